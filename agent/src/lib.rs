//! `tidings-agent`: turns a question into a time-aware search, a grounded prompt and a cited
//! answer. Not built yet (see the agent issue); the crate exists so the workspace's crate edges
//! (`agent → index`, `api → agent`) are in place from the start.
