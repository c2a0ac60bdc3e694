//! [`SearchFilter`]: the filters both halves of the index apply (time range, authors, sources,
//! languages). Its own module so that the text index, the vector stores and hybrid search all
//! depend on it without depending on each other.

/// Filters shared by both halves of the index. Times are Unix milliseconds, inclusive.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SearchFilter {
    pub from_ms: Option<i64>,
    pub to_ms: Option<i64>,
    /// Lowercased handles without `@`; a post must have one of them.
    pub authors: Vec<String>,
    pub exclude_authors: Vec<String>,
    pub sources: Vec<String>,
    pub langs: Vec<String>,
}
