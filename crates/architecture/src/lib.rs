//! Holds no code: its tests check the workspace's dependency rules (see `tests/layering.rs`).
