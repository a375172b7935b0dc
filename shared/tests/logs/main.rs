//! The tests that read what a function logs, in a binary of their own: each runs a hook
//! under the functions' own log subscriber, scoped to its thread, and reads the lines.
//! Kept apart from the suite, whose many hooks run concurrently without a subscriber: a
//! log callsite one of those reaches first, while a scoped subscriber is alive on another
//! thread, can be left disabled for that subscriber.

#[path = "../suite/support/mod.rs"]
mod support;

mod emf;
mod secret_canaries;
mod throttling;
