//! One check of `host-check`: what it measured or saw, and its problems.

/// Problems listed per check; the rest are counted.
const MAX_LISTED: usize = 10;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub check: String,
    /// What was measured or seen, for a passing check too.
    pub summary: String,
    pub problems: Vec<String>,
    /// Problems beyond the listed ones.
    pub more: usize,
}

impl Finding {
    pub(crate) fn new(check: &str) -> Self {
        Self { check: check.to_owned(), summary: String::new(), problems: Vec::new(), more: 0 }
    }

    pub fn passed(&self) -> bool {
        self.problems.is_empty()
    }

    /// This finding, failed with `problem`.
    pub(crate) fn failing(mut self, problem: String) -> Self {
        if self.summary.is_empty() {
            self.summary = "the check did not complete".into();
        }
        self.problem(problem);
        self
    }

    pub(crate) fn problem(&mut self, problem: String) {
        if self.problems.len() < MAX_LISTED { self.problems.push(problem) } else { self.more += 1 }
    }
}
