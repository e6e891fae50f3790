//! Placeholder: ported in a following commit.
