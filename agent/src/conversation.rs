//! Conversations as trees of messages.
//!
//! Every message has a parent (none for a first question). Regenerating an answer adds a
//! sibling assistant message; editing a message adds an edited sibling and keeps the original.
//! Each message remembers which of its children is active, and the conversation remembers its
//! active first message: following those choices from the root gives the *active path*, the
//! history the model sees. This module is storage-free; the API layer loads a conversation's
//! messages and asks the tree what to do.

use crate::model::{ChatMessage, Role};
use std::collections::HashMap;

/// What the tree needs of a stored message.
#[derive(Clone, Debug, PartialEq)]
pub struct Node {
    pub id: String,
    pub parent: Option<String>,
    pub role: Role,
    pub content: String,
    /// The chosen child, if one was chosen.
    pub active_child: Option<String>,
    /// Creation order inside the conversation.
    pub seq: i64,
}

/// Where a message sits among its versions: `index` of `count` (1-based), and the sibling ids in
/// creation order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Versions {
    pub index: usize,
    pub count: usize,
    pub siblings: Vec<String>,
}

/// A conversation's messages, indexed.
#[derive(Clone, Debug, Default)]
pub struct Tree {
    nodes: HashMap<String, Node>,
    /// Children of each parent (`None`: first messages), in creation order.
    children: HashMap<Option<String>, Vec<String>>,
    active_root: Option<String>,
}

impl Tree {
    pub fn new(mut nodes: Vec<Node>, active_root: Option<String>) -> Tree {
        nodes.sort_by(|a, b| a.seq.cmp(&b.seq).then_with(|| a.id.cmp(&b.id)));
        let mut children: HashMap<Option<String>, Vec<String>> = HashMap::new();
        for n in &nodes {
            children
                .entry(n.parent.clone())
                .or_default()
                .push(n.id.clone());
        }
        Tree {
            nodes: nodes.into_iter().map(|n| (n.id.clone(), n)).collect(),
            children,
            active_root,
        }
    }

    pub fn get(&self, id: &str) -> Option<&Node> {
        self.nodes.get(id)
    }

    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// Children of `parent` (`None`: the first messages), oldest first.
    pub fn children(&self, parent: Option<&str>) -> &[String] {
        self.children
            .get(&parent.map(str::to_string))
            .map_or(&[], Vec::as_slice)
    }

    /// The active child of `parent`: the chosen one when it still exists, else the newest.
    pub fn active_child(&self, parent: Option<&str>) -> Option<&str> {
        let kids = self.children(parent);
        let chosen = match parent {
            None => self.active_root.as_deref(),
            Some(p) => self.nodes.get(p).and_then(|n| n.active_child.as_deref()),
        };
        chosen
            .filter(|c| kids.iter().any(|k| k == c))
            .or_else(|| kids.last().map(String::as_str))
    }

    /// The active path from the first message to the last, as ids.
    pub fn active_path(&self) -> Vec<String> {
        let mut path = Vec::new();
        let mut at: Option<String> = None;
        while let Some(next) = self.active_child(at.as_deref()) {
            let next = next.to_string();
            if path.contains(&next) {
                break; // a cycle could only come from corrupt data; stop rather than loop
            }
            path.push(next.clone());
            at = Some(next);
        }
        path
    }

    /// The last message of the active path.
    pub fn active_leaf(&self) -> Option<&Node> {
        self.active_path().last().and_then(|id| self.nodes.get(id))
    }

    /// Ids from the first message down to `id` (inclusive).
    pub fn lineage(&self, id: &str) -> Vec<String> {
        let mut out = Vec::new();
        let mut at = self.nodes.get(id);
        while let Some(n) = at {
            if out.contains(&n.id) {
                break;
            }
            out.push(n.id.clone());
            at = n.parent.as_deref().and_then(|p| self.nodes.get(p));
        }
        out.reverse();
        out
    }

    /// The history the model sees for a reply under `parent`: the messages from the first one
    /// down to `parent`, inclusive. An edited message contributes its edited text, because the
    /// edit *is* the message on that path.
    pub fn history_until(&self, parent: Option<&str>) -> Vec<ChatMessage> {
        let Some(parent) = parent else {
            return Vec::new();
        };
        self.lineage(parent)
            .iter()
            .filter_map(|id| self.nodes.get(id))
            .map(|n| ChatMessage::new(n.role, n.content.clone()))
            .collect()
    }

    /// The versions of `id`: itself and its siblings of the same role.
    pub fn versions(&self, id: &str) -> Option<Versions> {
        let node = self.nodes.get(id)?;
        let siblings: Vec<String> = self
            .children(node.parent.as_deref())
            .iter()
            .filter(|s| self.nodes.get(*s).is_some_and(|n| n.role == node.role))
            .cloned()
            .collect();
        let index = siblings.iter().position(|s| s == id)? + 1;
        Some(Versions {
            index,
            count: siblings.len(),
            siblings,
        })
    }

    /// Whether a new user message may hang under `parent`: first messages, and answers.
    pub fn can_ask_under(&self, parent: Option<&str>) -> Result<(), String> {
        match parent {
            None => Ok(()),
            Some(p) => match self.nodes.get(p) {
                None => Err(format!("message {p} is not in this conversation")),
                Some(n) if n.role == Role::Assistant => Ok(()),
                Some(_) => Err(format!(
                    "message {p} is a question; a new question follows an answer (regenerate or edit to change a question's answer)"
                )),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(id: &str, parent: Option<&str>, role: Role, seq: i64) -> Node {
        Node {
            id: id.into(),
            parent: parent.map(Into::into),
            role,
            content: format!("{id} text"),
            active_child: None,
            seq,
        }
    }

    /// q1 → a1, a1b (regenerated) ; a1b → q2 → a2 ; q1e (edited q1) → a1e
    fn sample() -> Vec<Node> {
        vec![
            node("q1", None, Role::User, 1),
            node("a1", Some("q1"), Role::Assistant, 2),
            node("a1b", Some("q1"), Role::Assistant, 3),
            node("q2", Some("a1b"), Role::User, 4),
            node("a2", Some("q2"), Role::Assistant, 5),
            node("q1e", None, Role::User, 6),
            node("a1e", Some("q1e"), Role::Assistant, 7),
        ]
    }

    #[test]
    fn newest_versions_are_active_unless_chosen() {
        let tree = Tree::new(sample(), None);
        assert_eq!(tree.active_path(), vec!["q1e", "a1e"]);
        let tree = Tree::new(sample(), Some("q1".into()));
        assert_eq!(tree.active_path(), vec!["q1", "a1b", "q2", "a2"]);
    }

    #[test]
    fn choosing_a_version_switches_the_path_below_it() {
        let mut nodes = sample();
        nodes[0].active_child = Some("a1".into());
        let tree = Tree::new(nodes, Some("q1".into()));
        assert_eq!(tree.active_path(), vec!["q1", "a1"]);
        assert_eq!(
            tree.versions("a1"),
            Some(Versions {
                index: 1,
                count: 2,
                siblings: vec!["a1".into(), "a1b".into()]
            })
        );
        assert_eq!(
            tree.versions("q1e").map(|v| (v.index, v.count)),
            Some((2, 2))
        );
    }

    #[test]
    fn a_chosen_child_that_no_longer_exists_falls_back_to_the_newest() {
        let mut nodes = sample();
        nodes[0].active_child = Some("gone".into());
        let tree = Tree::new(nodes, Some("q1".into()));
        assert_eq!(tree.active_path(), vec!["q1", "a1b", "q2", "a2"]);
    }

    #[test]
    fn history_follows_the_lineage_with_edited_text() {
        let mut nodes = sample();
        nodes[2].content = "edited answer".into();
        let tree = Tree::new(nodes, Some("q1".into()));
        let h = tree.history_until(Some("a1b"));
        assert_eq!(h.len(), 2);
        assert_eq!(h[0].content, "q1 text");
        assert_eq!(h[1].content, "edited answer");
        assert_eq!(h[1].role, Role::Assistant);
        assert!(tree.history_until(None).is_empty());
    }

    #[test]
    fn questions_follow_answers() {
        let tree = Tree::new(sample(), None);
        assert!(tree.can_ask_under(None).is_ok());
        assert!(tree.can_ask_under(Some("a1")).is_ok());
        assert!(tree.can_ask_under(Some("q1")).is_err());
        assert!(tree.can_ask_under(Some("nope")).is_err());
    }

    #[test]
    fn a_cycle_in_corrupt_data_does_not_hang() {
        let mut nodes = vec![
            node("x", Some("y"), Role::User, 1),
            node("y", Some("x"), Role::Assistant, 2),
        ];
        nodes[0].active_child = Some("y".into());
        nodes[1].active_child = Some("x".into());
        let tree = Tree::new(nodes, None);
        assert!(tree.active_path().is_empty());
        assert_eq!(tree.lineage("x").len(), 2);
    }
}
