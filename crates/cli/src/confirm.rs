//! Asking before doing: `--yes` answers in advance; otherwise only a person at a terminal can
//! answer, and anything but yes is no.

use std::io::{BufRead, IsTerminal, Write};

use anyhow::{bail, Result};

/// Who says yes to a question like "apply these 3 actions".
pub trait Confirm {
    fn confirm(&mut self, question: &str) -> Result<bool>;
}

/// `--yes`: every question answered yes.
pub struct Yes;

impl Confirm for Yes {
    fn confirm(&mut self, _question: &str) -> Result<bool> {
        Ok(true)
    }
}

/// The person at the terminal: asked on stdout, answering on stdin.
pub struct Terminal;

impl Confirm for Terminal {
    fn confirm(&mut self, question: &str) -> Result<bool> {
        let stdin = std::io::stdin();
        ask(
            question,
            stdin.is_terminal(),
            &mut stdin.lock(),
            &mut std::io::stdout(),
        )
    }
}

/// Asks `question` on `out` and reads the answer from `input`, refusing without a terminal: a
/// script or a pipe must say `--yes`, never be taken as having said it.
pub fn ask(
    question: &str,
    is_terminal: bool,
    input: &mut impl BufRead,
    out: &mut impl Write,
) -> Result<bool> {
    if !is_terminal {
        bail!("refusing to {question} without a terminal to confirm on; pass --yes");
    }
    write!(out, "{question}? [y/N] ")?;
    out.flush()?;
    let mut answer = String::new();
    input.read_line(&mut answer)?;
    Ok(matches!(answer.trim(), "y" | "Y" | "yes"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(text: &str) -> Result<bool> {
        let mut shown = Vec::new();
        let said = ask(
            "delete these 2 images",
            true,
            &mut text.as_bytes(),
            &mut shown,
        );
        assert_eq!(
            String::from_utf8(shown).unwrap(),
            "delete these 2 images? [y/N] "
        );
        said
    }

    #[test]
    fn only_yes_is_yes() {
        for yes in ["y\n", "Y\n", "yes\n", "  yes  \n"] {
            assert!(answer(yes).unwrap(), "{yes:?}");
        }
        for no in ["\n", "", "n\n", "no\n", "YES please\n", "yy\n"] {
            assert!(!answer(no).unwrap(), "{no:?}");
        }
    }

    #[test]
    fn without_a_terminal_nothing_is_asked_and_it_refuses() {
        let mut shown = Vec::new();
        let e = ask(
            "apply these 1 actions",
            false,
            &mut "y\n".as_bytes(),
            &mut shown,
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("without a terminal") && e.contains("--yes"),
            "{e}"
        );
        assert!(shown.is_empty());
    }
}
