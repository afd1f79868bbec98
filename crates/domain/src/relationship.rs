//! The relationship state machine: pure transitions of one ordered pair of users.
