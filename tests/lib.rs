//! Test fixtures shared by the end-to-end tests in `e2e/` and the agent's unit tests.
//! The end-to-end tests themselves live in `e2e/`.

pub mod git_http;
