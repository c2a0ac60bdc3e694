//! The full-text half of the index: tantivy schema, documents, BM25 queries and filters.

use crate::analyzer::{social_analyzer, SOCIAL_ANALYZER};
use crate::filter::SearchFilter;
use crate::post::{Post, PostId};
use crate::IndexError;
use std::collections::{BTreeMap, HashMap};
use std::ops::Bound;
use std::path::Path;
use tantivy::collector::TopDocs;
use tantivy::query::{BooleanQuery, ConstScoreQuery, Occur, Query, RangeQuery, TermQuery};
use tantivy::schema::{
    Field, IndexRecordOption, NumericOptions, Schema, TextFieldIndexing, TextOptions, Value,
    STORED, STRING,
};
use tantivy::{DocAddress, Index, IndexReader, ReloadPolicy, Searcher, TantivyDocument, Term};

/// Field handles of the text index schema.
#[derive(Clone, Debug)]
pub(crate) struct Fields {
    pub(crate) id: Field,
    pub(crate) text: Field,
    pub(crate) author: Field,
    pub(crate) source: Field,
    pub(crate) lang: Field,
    pub(crate) created_at: Field,
    pub(crate) id_hash: Field,
    pub(crate) content_hash: Field,
    pub(crate) dup_key: Field,
    pub(crate) engagement: Field,
    pub(crate) doc: Field,
}

pub(crate) const F_ID_HASH: &str = "id_hash";
pub(crate) const F_CONTENT_HASH: &str = "content_hash";
pub(crate) const F_CREATED_AT: &str = "created_at";
pub(crate) const F_DUP_KEY: &str = "dup_key";
pub(crate) const F_ENGAGEMENT: &str = "engagement";

/// The schema of a new index and its field handles. `positions`: whether the text field keeps
/// term positions. No query uses them (the search is an OR of terms, and the reranker's phrase
/// feature analyses the candidates' text itself), and leaving them out makes bulk indexing
/// cheaper, so new indexes have none; indexes made before 2026-12-06 have them and are opened
/// as they are (see [`TextIndex::open`]).
fn build_schema(positions: bool) -> (Schema, Fields) {
    let mut b = Schema::builder();
    let text_opts = TextOptions::default().set_indexing_options(
        TextFieldIndexing::default()
            .set_tokenizer(SOCIAL_ANALYZER)
            .set_index_option(if positions {
                IndexRecordOption::WithFreqsAndPositions
            } else {
                IndexRecordOption::WithFreqs
            }),
    );
    let fast_u64 = NumericOptions::default().set_fast().set_indexed();
    let fields = Fields {
        id: b.add_text_field("id", STRING),
        text: b.add_text_field("text", text_opts),
        author: b.add_text_field("author", STRING),
        source: b.add_text_field("source", STRING),
        lang: b.add_text_field("lang", STRING),
        created_at: b.add_i64_field(
            F_CREATED_AT,
            NumericOptions::default().set_fast().set_indexed(),
        ),
        id_hash: b.add_u64_field(F_ID_HASH, NumericOptions::default().set_fast()),
        content_hash: b.add_u64_field(F_CONTENT_HASH, NumericOptions::default().set_fast()),
        dup_key: b.add_u64_field(F_DUP_KEY, fast_u64),
        engagement: b.add_u64_field(F_ENGAGEMENT, NumericOptions::default().set_fast()),
        doc: b.add_text_field("doc", STORED),
    };
    (b.build(), fields)
}

/// The opened tantivy index and its reader (reloaded by the writer right after each commit).
#[derive(Clone)]
pub(crate) struct TextIndex {
    pub(crate) index: Index,
    pub(crate) fields: Fields,
    pub(crate) reader: IndexReader,
}

impl TextIndex {
    /// Opens the index in `dir`, creating it when the folder is empty. An existing index keeps
    /// the schema it was made with when that is this one or the earlier one with term
    /// positions (which differ only in what the text postings store); any other schema is
    /// refused with what to do.
    pub(crate) fn open(dir: &Path) -> Result<TextIndex, IndexError> {
        std::fs::create_dir_all(dir)
            .map_err(|e| IndexError::internal(format!("create {}: {e}", dir.display())))?;
        let directory = tantivy::directory::MmapDirectory::open(dir)
            .map_err(|e| IndexError::internal(format!("open {}: {e}", dir.display())))?;
        let opened = |e: tantivy::TantivyError| {
            IndexError::internal(format!("open text index in {}: {e}", dir.display()))
        };
        let exists = Index::exists(&directory).map_err(|e| {
            IndexError::internal(format!("read the text index in {}: {e}", dir.display()))
        })?;
        let (index, fields) = if exists {
            let index = Index::open(directory).map_err(opened)?;
            let found = index.schema();
            let Some(fields) = [false, true].into_iter().find_map(|positions| {
                let (schema, fields) = build_schema(positions);
                (schema == found).then_some(fields)
            }) else {
                return Err(IndexError::internal(format!(
                    "the text index in {} was made by another version of tidings (its schema \
                     differs); move it aside and ingest again, or use the version that made it",
                    dir.display()
                )));
            };
            let text = TextIndex::reader_for(index, fields)?;
            if text.has_positions() {
                tracing::info!(
                    dir = %dir.display(),
                    "this text index keeps term positions (made before 2026-12-06); it works as \
                     it is, and a new one (ingest into an empty data dir) indexes ~10% faster"
                );
            }
            return Ok(text);
        } else {
            let (schema, fields) = build_schema(false);
            (
                Index::create(directory, schema, tantivy::IndexSettings::default())
                    .map_err(opened)?,
                fields,
            )
        };
        TextIndex::reader_for(index, fields)
    }

    /// Registers the analyzer on `index` and opens its reader.
    fn reader_for(index: Index, fields: Fields) -> Result<TextIndex, IndexError> {
        index
            .tokenizers()
            .register(SOCIAL_ANALYZER, social_analyzer());
        let reader = index
            .reader_builder()
            .reload_policy(ReloadPolicy::Manual)
            .try_into()
            .map_err(|e| IndexError::internal(format!("open text reader: {e}")))?;
        Ok(TextIndex {
            index,
            fields,
            reader,
        })
    }

    /// Whether the text postings keep term positions (only indexes made before 2026-12-06).
    pub(crate) fn has_positions(&self) -> bool {
        self.index
            .schema()
            .get_field_entry(self.fields.text)
            .field_type()
            .get_index_record_option()
            .is_some_and(|o| o.has_positions())
    }

    /// The document stored for `post`.
    /// `content_hash` and `dup_key` are the post's own (the writer has computed them already).
    pub(crate) fn document(
        &self,
        post: &Post,
        content_hash: u64,
        dup_key: u64,
    ) -> Result<TantivyDocument, IndexError> {
        let f = &self.fields;
        let mut doc = TantivyDocument::default();
        doc.add_text(f.id, post.id.as_str());
        doc.add_text(f.text, &post.text);
        if let Some(author) = &post.author {
            doc.add_text(f.author, author);
        }
        doc.add_text(f.source, &post.source);
        if let Some(lang) = &post.lang {
            doc.add_text(f.lang, lang);
        }
        doc.add_i64(f.created_at, post.created_at.timestamp_millis());
        doc.add_u64(f.id_hash, post.id.hash64());
        doc.add_u64(f.content_hash, content_hash);
        doc.add_u64(f.dup_key, dup_key);
        doc.add_u64(f.engagement, post.engagement.total());
        let json = crate::stored::encode(post)
            .map_err(|e| IndexError::internal(format!("encode post: {e}")))?;
        doc.add_text(f.doc, json);
        Ok(doc)
    }

    pub(crate) fn id_term(&self, id: &PostId) -> Term {
        Term::from_field_text(self.fields.id, id.as_str())
    }

    /// Source checkpoints stored in the last commit's payload.
    pub(crate) fn checkpoints(&self) -> Result<BTreeMap<String, String>, IndexError> {
        let metas = self
            .index
            .load_metas()
            .map_err(|e| IndexError::internal(format!("read index metas: {e}")))?;
        Ok(decode_payload(metas.payload.as_deref()))
    }

    /// id hash → content hash of every live document (the writer's dedup map).
    pub(crate) fn id_map(&self) -> Result<HashMap<u64, (u64, u64)>, IndexError> {
        let searcher = self.reader.searcher();
        let mut map = HashMap::with_capacity(searcher.num_docs() as usize);
        for segment in searcher.segment_readers() {
            let ff = segment.fast_fields();
            let ids = ff.u64(F_ID_HASH).map_err(IndexError::tantivy)?;
            let contents = ff.u64(F_CONTENT_HASH).map_err(IndexError::tantivy)?;
            let dups = ff.u64(F_DUP_KEY).map_err(IndexError::tantivy)?;
            for doc in segment.doc_ids_alive() {
                if let (Some(id), Some(content), Some(dup)) =
                    (ids.first(doc), contents.first(doc), dups.first(doc))
                {
                    map.insert(id, (content, dup));
                }
            }
        }
        Ok(map)
    }

    /// Every live post id with the number of live documents holding it.
    pub(crate) fn live_ids(&self) -> Result<BTreeMap<String, u32>, IndexError> {
        let searcher = self.reader.searcher();
        let mut out = BTreeMap::new();
        for (ord, segment) in searcher.segment_readers().iter().enumerate() {
            for doc in segment.doc_ids_alive() {
                let post = load_post(&searcher, &self.fields, DocAddress::new(ord as u32, doc))?;
                *out.entry(post.id.to_string()).or_insert(0) += 1;
            }
        }
        Ok(out)
    }

    /// Every live post whose id hash is in `wanted`, in no particular order.
    pub(crate) fn posts_with_hashes(
        &self,
        wanted: &std::collections::HashSet<u64>,
    ) -> Result<Vec<Post>, IndexError> {
        let searcher = self.reader.searcher();
        let mut out = Vec::new();
        for (ord, segment) in searcher.segment_readers().iter().enumerate() {
            let ids = segment
                .fast_fields()
                .u64(F_ID_HASH)
                .map_err(IndexError::tantivy)?;
            for doc in segment.doc_ids_alive() {
                if ids.first(doc).is_some_and(|h| wanted.contains(&h)) {
                    out.push(load_post(
                        &searcher,
                        &self.fields,
                        DocAddress::new(ord as u32, doc),
                    )?);
                }
            }
        }
        Ok(out)
    }

    /// Looks posts up by id; missing ids are skipped.
    pub(crate) fn get(&self, searcher: &Searcher, id: &PostId) -> Result<Option<Post>, IndexError> {
        let query = TermQuery::new(self.id_term(id), IndexRecordOption::Basic);
        let hits = searcher
            .search(&query, &TopDocs::with_limit(1).order_by_score())
            .map_err(IndexError::tantivy)?;
        match hits.first() {
            Some((_, addr)) => Ok(Some(load_post(searcher, &self.fields, *addr)?)),
            None => Ok(None),
        }
    }

    /// The analyzed, de-duplicated terms of a query string.
    pub(crate) fn query_terms(&self, query: &str) -> Vec<Term> {
        let mut analyzer = social_analyzer();
        let mut stream = analyzer.token_stream(query);
        let mut seen = std::collections::HashSet::new();
        let mut terms = Vec::new();
        while let Some(token) = stream.next() {
            if seen.insert(token.text.clone()) {
                terms.push(Term::from_field_text(self.fields.text, &token.text));
            }
        }
        terms
    }

    /// BM25 top-`limit` for `query` (OR of its terms) under `filter`.
    pub(crate) fn bm25(
        &self,
        searcher: &Searcher,
        query: &str,
        filter: &SearchFilter,
        limit: usize,
    ) -> Result<Vec<(f32, DocAddress)>, IndexError> {
        let terms = self.query_terms(query);
        if terms.is_empty() {
            return self.newest(searcher, filter, limit);
        }
        let text_query: Box<dyn Query> = Box::new(BooleanQuery::new(
            terms
                .into_iter()
                .map(|t| {
                    (
                        Occur::Should,
                        Box::new(TermQuery::new(t, IndexRecordOption::WithFreqs)) as Box<dyn Query>,
                    )
                })
                .collect(),
        ));
        let mut clauses = vec![(Occur::Must, text_query)];
        clauses.extend(self.filter_clauses(filter));
        let query = BooleanQuery::new(clauses);
        let hits = top_with_ties(searcher, &query, limit)?;
        in_post_order(searcher, hits, limit)
    }

    /// A query without words ("what's happening right now?") browses: the newest posts that
    /// pass the filter, each scored 1. Without any filter there is nothing to browse.
    fn newest(
        &self,
        searcher: &Searcher,
        filter: &SearchFilter,
        limit: usize,
    ) -> Result<Vec<(f32, DocAddress)>, IndexError> {
        let mut clauses = self.filter_clauses(filter);
        if clauses.is_empty() {
            return Ok(Vec::new());
        }
        clauses.push((Occur::Must, Box::new(tantivy::query::AllQuery)));
        let query = BooleanQuery::new(clauses);
        let hits = searcher
            .search(
                &query,
                &TopDocs::with_limit(limit)
                    .order_by_fast_field::<i64>(F_CREATED_AT, tantivy::Order::Desc),
            )
            .map_err(IndexError::tantivy)?;
        let last = hits
            .last()
            .filter(|_| hits.len() >= limit)
            .and_then(|h| h.0);
        let mut hits: Vec<(f32, DocAddress)> =
            hits.into_iter().map(|(_, addr)| (1.0, addr)).collect();
        if let Some(last) = last {
            // Posts of the same second at the edge: all of them, then the cut by id hash (see
            // `top_with_ties`).
            let mut clauses = self.filter_clauses(filter);
            let at = Term::from_field_i64(self.fields.created_at, last);
            clauses.push((
                Occur::Must,
                Box::new(RangeQuery::new(
                    Bound::Included(at.clone()),
                    Bound::Included(at),
                )),
            ));
            let tied = searcher
                .search(
                    &BooleanQuery::new(clauses),
                    &tantivy::collector::DocSetCollector,
                )
                .map_err(IndexError::tantivy)?;
            let known: std::collections::HashSet<DocAddress> = hits.iter().map(|h| h.1).collect();
            hits.extend(
                tied.into_iter()
                    .filter(|a| !known.contains(a))
                    .map(|a| (1.0, a)),
            );
        }
        in_post_order(searcher, hits, limit)
    }

    /// Filter clauses shared by every text query. They add nothing to a post's score: a `Must`
    /// clause scores in tantivy (a range 1.0 in some segment layouts and not in others, which
    /// moved posts up or down after a restart; an author term its BM25), so each is held at 0.
    pub(crate) fn filter_clauses(&self, filter: &SearchFilter) -> Vec<(Occur, Box<dyn Query>)> {
        let f = &self.fields;
        let mut clauses: Vec<(Occur, Box<dyn Query>)> = Vec::new();
        let unscored =
            |q: Box<dyn Query>| -> Box<dyn Query> { Box::new(ConstScoreQuery::new(q, 0.0)) };
        if filter.from_ms.is_some() || filter.to_ms.is_some() {
            let lower = filter.from_ms.map_or(Bound::Unbounded, |v| {
                Bound::Included(Term::from_field_i64(f.created_at, v))
            });
            let upper = filter.to_ms.map_or(Bound::Unbounded, |v| {
                Bound::Included(Term::from_field_i64(f.created_at, v))
            });
            clauses.push((
                Occur::Must,
                unscored(Box::new(RangeQuery::new(lower, upper))),
            ));
        }
        let any_of = |field: Field, values: &[String]| -> Box<dyn Query> {
            Box::new(BooleanQuery::new(
                values
                    .iter()
                    .map(|v| {
                        (
                            Occur::Should,
                            Box::new(TermQuery::new(
                                Term::from_field_text(field, v),
                                IndexRecordOption::Basic,
                            )) as Box<dyn Query>,
                        )
                    })
                    .collect(),
            ))
        };
        if !filter.authors.is_empty() {
            clauses.push((Occur::Must, unscored(any_of(f.author, &filter.authors))));
        }
        if !filter.sources.is_empty() {
            clauses.push((Occur::Must, unscored(any_of(f.source, &filter.sources))));
        }
        if !filter.langs.is_empty() {
            clauses.push((Occur::Must, unscored(any_of(f.lang, &filter.langs))));
        }
        for author in &filter.exclude_authors {
            clauses.push((
                Occur::MustNot,
                Box::new(TermQuery::new(
                    Term::from_field_text(f.author, author),
                    IndexRecordOption::Basic,
                )),
            ));
        }
        clauses
    }
}

/// Reads the stored post at `addr`.
pub(crate) fn load_post(
    searcher: &Searcher,
    fields: &Fields,
    addr: DocAddress,
) -> Result<Post, IndexError> {
    let doc: TantivyDocument = searcher.doc(addr).map_err(IndexError::tantivy)?;
    let json = doc
        .get_first(fields.doc)
        .and_then(|v| v.as_str().map(str::to_string))
        .ok_or_else(|| IndexError::internal("stored document has no body"))?;
    crate::stored::decode(&json)
        .map_err(|e| IndexError::internal(format!("decode stored post: {e}")))
}

/// Commit payload: `{"checkpoints": {source: position}}`.
pub(crate) fn encode_payload(checkpoints: &BTreeMap<String, String>) -> String {
    serde_json::json!({ "checkpoints": checkpoints }).to_string()
}

/// The best `limit` matches of `query` and every match tied with the last of them, in one
/// pruned pass (block-max WAND skips what cannot reach the current last score).
///
/// tantivy's own top-k breaks ties by doc address, which depends on which indexing thread took a
/// post and on merges, so two indexes of the same posts (replicas, a re-ingest, an index before
/// and after a merge) held different pools whenever posts tied at the last place, and copies
/// and retweets score alike. With the ties kept, [`in_post_order`] makes the cut by what the
/// posts are.
fn top_with_ties(
    searcher: &Searcher,
    query: &dyn Query,
    limit: usize,
) -> Result<Vec<(f32, DocAddress)>, IndexError> {
    let limit = limit.max(1);
    let weight = query
        .weight(tantivy::query::EnableScoring::enabled_from_searcher(
            searcher,
        ))
        .map_err(IndexError::tantivy)?;
    let mut kept: Vec<(f32, DocAddress)> = Vec::new();
    // Only scores above `floor` reach the callback: once `limit` are kept, the last of them
    // and higher.
    let mut floor = f32::MIN;
    // Pruned when it doubles, so a flood of equal scores costs linear time.
    let mut prune_at = 2 * limit;
    let prune = |kept: &mut Vec<(f32, DocAddress)>| -> Option<f32> {
        if kept.len() <= limit {
            return None;
        }
        kept.select_nth_unstable_by(limit - 1, |a, b| b.0.total_cmp(&a.0));
        let last = kept[limit - 1].0;
        kept.retain(|h| h.0 >= last);
        Some(last)
    };
    for (ord, segment) in searcher.segment_readers().iter().enumerate() {
        let alive = segment.alive_bitset();
        weight
            .for_each_pruning(floor, segment, &mut |doc, score| {
                if alive.is_some_and(|a| a.is_deleted(doc)) {
                    return floor;
                }
                kept.push((score, DocAddress::new(ord as u32, doc)));
                if kept.len() >= prune_at {
                    if let Some(last) = prune(&mut kept) {
                        floor = last.next_down();
                    }
                    prune_at = (2 * kept.len()).max(2 * limit);
                }
                floor
            })
            .map_err(IndexError::tantivy)?;
    }
    prune(&mut kept);
    Ok(kept)
}

/// The first `limit` of `hits` by score, then newest first, then id hash (doc address last, for
/// two documents of one post that a commit has not yet resolved).
fn in_post_order(
    searcher: &Searcher,
    hits: Vec<(f32, DocAddress)>,
    limit: usize,
) -> Result<Vec<(f32, DocAddress)>, IndexError> {
    let mut columns = HashMap::new();
    let mut keyed = Vec::with_capacity(hits.len());
    for (score, addr) in hits {
        let (created, ids) = match columns.entry(addr.segment_ord) {
            std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
            std::collections::hash_map::Entry::Vacant(e) => {
                let ff = searcher.segment_reader(addr.segment_ord).fast_fields();
                e.insert((
                    ff.i64(F_CREATED_AT).map_err(IndexError::tantivy)?,
                    ff.u64(F_ID_HASH).map_err(IndexError::tantivy)?,
                ))
            }
        };
        let key = (
            created.first(addr.doc_id).unwrap_or(0),
            ids.first(addr.doc_id).unwrap_or(0),
        );
        keyed.push((score, key, addr));
    }
    let order = |a: &(f32, (i64, u64), DocAddress), b: &(f32, (i64, u64), DocAddress)| {
        b.0.total_cmp(&a.0)
            .then(b.1 .0.cmp(&a.1 .0))
            .then(a.1 .1.cmp(&b.1 .1))
            .then(a.2.cmp(&b.2))
    };
    if keyed.len() > limit {
        // A flood of copies can tie thousands of posts: select the pool, then sort it.
        keyed.select_nth_unstable_by(limit - 1, order);
        keyed.truncate(limit);
    }
    keyed.sort_by(order);
    Ok(keyed
        .into_iter()
        .map(|(score, _, addr)| (score, addr))
        .collect())
}

fn decode_payload(payload: Option<&str>) -> BTreeMap<String, String> {
    payload
        .and_then(|p| serde_json::from_str::<serde_json::Value>(p).ok())
        .and_then(|v| v.get("checkpoints").cloned())
        .and_then(|c| serde_json::from_value(c).ok())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn post(n: usize, text: &str) -> Post {
        crate::testing::post(n, text, Some("someone"), 5)
    }

    fn index_one(text: &TextIndex, p: &Post) {
        let mut writer: tantivy::IndexWriter<TantivyDocument> =
            text.index.writer(15_000_000).unwrap();
        writer
            .add_document(text.document(p, p.content_hash(), p.dup_key()).unwrap())
            .unwrap();
        writer.commit().unwrap();
        text.reader.reload().unwrap();
    }

    fn hits(text: &TextIndex, query: &str) -> usize {
        text.bm25(&text.reader.searcher(), query, &SearchFilter::default(), 10)
            .unwrap()
            .len()
    }

    #[test]
    fn filters_add_nothing_to_scores_in_any_segment_layout() {
        let dir = tempfile::tempdir().unwrap();
        let text = TextIndex::open(dir.path()).unwrap();
        // Two segments, one post each; the second also by another author.
        index_one(&text, &post(1, "river flood near the mill"));
        let mut other = post(2, "river flood near the gate");
        other.author = Some("elsewhere".into());
        index_one(&text, &other);
        let searcher = text.reader.searcher();
        let scores = |filter: &SearchFilter| -> Vec<f32> {
            let mut s: Vec<f32> = text
                .bm25(&searcher, "flood", filter, 10)
                .unwrap()
                .into_iter()
                .map(|(score, _)| score)
                .collect();
            s.sort_by(f32::total_cmp);
            s
        };
        let plain = scores(&SearchFilter::default());
        assert_eq!(plain.len(), 2);
        let window = SearchFilter {
            from_ms: Some(0),
            to_ms: Some(i64::MAX / 2),
            ..SearchFilter::default()
        };
        assert_eq!(scores(&window), plain);
        let authors = SearchFilter {
            authors: vec!["someone".into(), "elsewhere".into()],
            sources: vec![post(1, "").source],
            ..SearchFilter::default()
        };
        assert_eq!(scores(&authors), plain);
    }

    #[test]
    fn posts_tied_at_the_pools_edge_are_cut_by_what_they_are() {
        // 40 copies of one text score alike; half are a minute older. A limit of 10 cuts
        // inside the tie, so tantivy's doc-address order would decide who is in.
        let copies: Vec<Post> = (0..40)
            .map(|n| {
                crate::testing::post(
                    n,
                    "flood warning for the river valley",
                    None,
                    (n % 2) as i64,
                )
            })
            .collect();
        let pool = |order: &mut dyn Iterator<Item = &Post>, per_segment: usize| {
            let dir = tempfile::tempdir().unwrap();
            let text = TextIndex::open(dir.path()).unwrap();
            let mut writer: tantivy::IndexWriter<TantivyDocument> =
                text.index.writer(15_000_000).unwrap();
            for (i, p) in order.enumerate() {
                writer
                    .add_document(text.document(p, p.content_hash(), p.dup_key()).unwrap())
                    .unwrap();
                if (i + 1) % per_segment == 0 {
                    writer.commit().unwrap();
                }
            }
            writer.commit().unwrap();
            text.reader.reload().unwrap();
            let searcher = text.reader.searcher();
            let posts = |filter: &SearchFilter, query: &str| {
                text.bm25(&searcher, query, filter, 10)
                    .unwrap()
                    .iter()
                    .map(|(_, addr)| load_post(&searcher, &text.fields, *addr).unwrap())
                    .collect::<Vec<Post>>()
            };
            // A query without words browses the newest posts of a window.
            let window = SearchFilter {
                from_ms: Some(0),
                ..SearchFilter::default()
            };
            (
                posts(&SearchFilter::default(), "river flood"),
                posts(&window, ""),
            )
        };
        let (forward, forward_newest) = pool(&mut copies.iter(), 40);
        let (backward, backward_newest) = pool(&mut copies.iter().rev(), 7);
        let ids = |posts: &[Post]| posts.iter().map(|p| p.id.to_string()).collect::<Vec<_>>();
        assert_eq!(ids(&forward), ids(&backward));
        assert_eq!(ids(&forward_newest), ids(&forward));
        assert_eq!(ids(&backward_newest), ids(&forward));
        // The newer posts (even n), lowest id hash first.
        let mut newer: Vec<&Post> = copies
            .iter()
            .filter(|p| p.created_at == copies[0].created_at)
            .collect();
        newer.sort_by_key(|p| p.id.hash64());
        assert_eq!(
            ids(&forward),
            newer[..10]
                .iter()
                .map(|p| p.id.to_string())
                .collect::<Vec<_>>()
        );
    }

    #[test]
    fn new_indexes_have_no_positions_and_old_ones_open_as_they_are() {
        let fresh = tempfile::tempdir().unwrap();
        let text = TextIndex::open(fresh.path()).unwrap();
        assert!(!text.has_positions());
        index_one(&text, &post(1, "地震 in Tokyo #東京"));
        drop(text);
        let text = TextIndex::open(fresh.path()).unwrap();
        assert!(!text.has_positions());
        assert_eq!(hits(&text, "地震"), 1);

        // An index made with the earlier schema (term positions kept) opens and searches.
        let old = tempfile::tempdir().unwrap();
        Index::create_in_dir(old.path(), build_schema(true).0).unwrap();
        let text = TextIndex::open(old.path()).unwrap();
        assert!(text.has_positions());
        index_one(&text, &post(2, "مرحبا بالعالم flood warning"));
        assert_eq!(hits(&text, "flooding"), 1);

        // Any other schema is refused, with what to do.
        let other = tempfile::tempdir().unwrap();
        let mut b = Schema::builder();
        b.add_text_field("text", tantivy::schema::TEXT);
        Index::create_in_dir(other.path(), b.build()).unwrap();
        let err = TextIndex::open(other.path()).err().unwrap().to_string();
        assert!(err.contains("another version of tidings"), "{err}");
    }
}
