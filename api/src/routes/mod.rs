//! One module per route family.

pub(crate) mod chat;
pub(crate) mod conversations;
pub(crate) mod health;
pub(crate) mod live;
pub(crate) mod posts;
pub(crate) mod search;
