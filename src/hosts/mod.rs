//! Session hosts (issue 4).
