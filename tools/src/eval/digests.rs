//! Digest figures on the public days: stories, mixed stories, and the share of summary
//! sentences the judge finds supported by their story's posts.

use super::judge::{judged_units, strictly_supported};
use std::collections::HashMap;

/// Digest figures the floors look at.
pub(super) struct DigestFigures {
    pub(super) boston_and_west_apart: bool,
    pub(super) mixed_stories: usize,
    /// Summary sentences the strict judge finds supported by the story's cited posts.
    pub(super) summary_sentences: usize,
    pub(super) summary_supported: usize,
}

/// Daily digests of CrisisLexT26 on days where events overlap: the stories found, each with
/// its posts' majority event and purity, and the share of cited posts labelled as related to
/// their story's event.
pub(super) async fn digests(agent: &tidings_agent::Agent) -> anyhow::Result<DigestFigures> {
    use tidings_agent::digest::{self, DigestSpec};
    use tidings_agent::stories::StoryConfig;
    const BOSTON: &str = "2013_Boston_bombings";
    const WEST: &str = "2013_West_Texas_explosion";
    let related = |p: &tidings_index::Post| {
        p.labels
            .get("informativeness")
            .is_some_and(|i| i.starts_with("Related"))
    };
    let mut unsupported: Vec<String> = Vec::new();
    let mut figures = DigestFigures {
        boston_and_west_apart: false,
        mixed_stories: 0,
        summary_sentences: 0,
        summary_supported: 0,
    };
    let (mut cited, mut cited_related) = (0usize, 0usize);
    println!(
        "
Digests of CrisisLexT26 days with overlapping events (24 h, UTC day, top 5 stories)"
    );
    for day in ["2013-04-19", "2013-01-27", "2013-12-02"] {
        let as_of =
            tidings_api::parse_time(&format!("{day}T23:59:59Z")).map_err(anyhow::Error::msg)?;
        let spec = DigestSpec {
            name: format!("CrisisLexT26 {day}"),
            ..DigestSpec::default()
        };
        let out = digest::run(agent, &spec, as_of, &StoryConfig::default()).await?;
        println!(
            "{day}: {} posts read, {} stories, {:.1}s",
            out.posts_seen,
            out.stories.len(),
            out.took.as_secs_f64()
        );
        let (mut boston, mut west) = (false, false);
        for s in &out.stories {
            let mut events: HashMap<&str, usize> = HashMap::new();
            for p in &s.story.posts {
                if let Some(e) = p.labels.get("event") {
                    *events.entry(e.as_str()).or_default() += 1;
                }
            }
            let total: usize = events.values().sum();
            let (major, n) = events
                .iter()
                .max_by_key(|(_, n)| **n)
                .map(|(e, n)| (e.to_string(), *n))
                .unwrap_or_default();
            let purity = n as f64 / total.max(1) as f64;
            // Mixed: a second event holds at least a tenth of the story.
            let mixed = events
                .iter()
                .any(|(e, m)| *e != major && *m as f64 >= 0.1 * total as f64);
            if mixed {
                figures.mixed_stories += 1;
            }
            if !mixed && major == BOSTON {
                boston = true;
            }
            if !mixed && major == WEST {
                west = true;
            }
            let story_cited = s.citations.len();
            let story_related = s
                .citations
                .iter()
                .filter(|c| related(&c.post) && c.post.labels.get("event") == Some(&major))
                .count();
            cited += story_cited;
            cited_related += story_related;
            // The strict judge over the summary: number n is the n-th post the summary was
            // given; the cited ones are known by their citations.
            let mut by_number: Vec<&str> = Vec::new();
            for c in &s.citations {
                if c.number >= 1 {
                    if by_number.len() < c.number {
                        by_number.resize(c.number, "");
                    }
                    by_number[c.number - 1] = c.post.text.as_str();
                }
            }
            for sentence in judged_units(&s.summary) {
                if let Some(ok) = strictly_supported(&sentence, &by_number) {
                    figures.summary_sentences += 1;
                    figures.summary_supported += usize::from(ok);
                    if !ok {
                        unsupported.push(sentence.trim().to_string());
                    }
                }
            }
            println!(
                "  {:<48} posts {:>4} burst {:>5.1} | {:<30} purity {:.2}{} | cited {} related {}",
                s.headline.chars().take(48).collect::<String>(),
                s.story.posts.len(),
                s.story.burst,
                major,
                purity,
                if mixed { " MIXED" } else { "" },
                story_cited,
                story_related
            );
            println!(
                "      {}",
                s.summary
                    .replace('\n', " ")
                    .chars()
                    .take(160)
                    .collect::<String>()
            );
        }
        if day == "2013-04-19" {
            figures.boston_and_west_apart = boston && west;
        }
    }
    for sentence in &unsupported {
        println!(
            "  summary sentence not supported: {}",
            sentence.chars().take(220).collect::<String>()
        );
    }
    println!(
        "digests: {} cited posts, {:.3} labelled as related to their story's event; {} mixed stories; summary sentences supported by a cited post {:.3} ({}/{}, strict judge)",
        cited,
        cited_related as f64 / cited.max(1) as f64,
        figures.mixed_stories,
        figures.summary_supported as f64 / figures.summary_sentences.max(1) as f64,
        figures.summary_supported,
        figures.summary_sentences
    );
    Ok(figures)
}
