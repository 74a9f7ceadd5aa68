//! Bad input and faults (issue: "each one a test").
