//! Conversations as trees of messages: `routes` (handlers), `generation` (answering, one at a
//! time per conversation, stored whatever happens), `views` (reading back, JSON), `types`
//! (request bodies and checks).

mod generation;
pub(crate) mod routes;
mod types;
mod views;

pub(crate) use generation::Generating;
