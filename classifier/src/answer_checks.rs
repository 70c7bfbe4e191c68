//! Confidence checks on a cheap model's answer, for cheap-then-escalate routing: evidence in
//! the answer itself that it is wrong or unfinished. The prompt alone says little about
//! whether a weak model will slip on a word problem; its worked answer often does:
//!
//! * `arithmetic_error`: a written calculation (`3 x 60 = 180`, `<<3*60=180>>`) whose left
//!   side does not evaluate to its right side;
//! * `truncated`: the text stops mid-expression or mid-sentence (a fallback for providers that
//!   do not report `finish_reason: length`);
//! * `no_final_answer`: no final result is stated (no "answer is …", "#### …", nor a number
//!   in the closing sentence) — only meaningful for questions that want a number;
//! * `unused_quantity`: a number the question gives never appears in the worked answer, the
//!   classic sign of a solution that skipped part of the problem;
//! * `refusal_or_hedge`: the answer says it cannot answer, or is unsure.
//!
//! Everything here is plain string work, microseconds per answer, with no model and no I/O.

/// What a check found wrong with an answer; [`Concern::as_str`] is its escalation label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Concern {
    /// A written calculation is wrong.
    ArithmeticError,
    /// The answer stops mid-expression or mid-sentence.
    Truncated,
    /// No final result is stated.
    NoFinalAnswer,
    /// A quantity given in the question never appears in the worked answer.
    UnusedQuantity,
    /// The answer refuses, or hedges about its own correctness.
    RefusalOrHedge,
}

impl Concern {
    /// Every concern, in check order.
    pub const ALL: [Self; 5] = [
        Self::ArithmeticError,
        Self::Truncated,
        Self::NoFinalAnswer,
        Self::UnusedQuantity,
        Self::RefusalOrHedge,
    ];

    /// The label used in escalation reasons, headers and metrics.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::ArithmeticError => "arithmetic_error",
            Self::Truncated => "truncated",
            Self::NoFinalAnswer => "no_final_answer",
            Self::UnusedQuantity => "unused_quantity",
            Self::RefusalOrHedge => "refusal_or_hedge",
        }
    }
}

/// One thing a check found, with the text that shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// What is wrong.
    pub concern: Concern,
    /// The offending text (a calculation, a phrase, the answer's tail).
    pub evidence: String,
}

/// Phrases that mark a refusal or a hedge (matched lower-cased). A policy may bring its own.
pub const DEFAULT_HEDGES: &[&str] = &[
    "i'm not sure",
    "i am not sure",
    "not certain",
    "i'm unable to",
    "i am unable to",
    "i cannot provide",
    "i can't provide",
    "cannot be determined",
    "can't be determined",
    "not enough information",
    "insufficient information",
    "more information is needed",
    "need more information",
    "without knowing",
    "it is unclear",
    "it's unclear",
    "i apologize",
    "as an ai",
];

/// Runs every check meant for an answer to a question that wants a worked, numeric result
/// (a word problem, a calculation). Findings come in [`Concern::ALL`] order.
pub fn check_math_answer(question: &str, answer: &str) -> Vec<Finding> {
    let mut findings: Vec<Finding> = arithmetic_errors(answer)
        .into_iter()
        .map(|evidence| Finding {
            concern: Concern::ArithmeticError,
            evidence,
        })
        .collect();
    let tail = || tail_of(answer, 60);
    if looks_truncated(answer) {
        findings.push(Finding {
            concern: Concern::Truncated,
            evidence: tail(),
        });
    } else if !states_final_answer(answer) {
        findings.push(Finding {
            concern: Concern::NoFinalAnswer,
            evidence: tail(),
        });
    }
    let unused = unused_quantities(question, answer);
    if !unused.is_empty() {
        findings.push(Finding {
            concern: Concern::UnusedQuantity,
            evidence: unused.join(", "),
        });
    }
    if let Some(phrase) = hedge(answer, DEFAULT_HEDGES) {
        findings.push(Finding {
            concern: Concern::RefusalOrHedge,
            evidence: phrase.to_owned(),
        });
    }
    findings
}

/// Numbers the question states (as digits; ordinals, 0 and 1 aside) that the answer never
/// mentions, as written in the question. A percentage counts as used in either form (30 or 0.3).
pub fn unused_quantities(question: &str, answer: &str) -> Vec<String> {
    let numbers = |text: &str| -> Vec<(f64, bool, String)> {
        let tokens = tokenize(text);
        tokens
            .iter()
            .enumerate()
            .filter_map(|(i, t)| match t.kind {
                Kind::Num { value, percent, .. } => {
                    let ordinal = tokens.get(i + 1).is_some_and(|n| {
                        n.at == t.end
                            && matches!(n.text.to_lowercase().as_str(), "st" | "nd" | "rd" | "th")
                    });
                    // 0 and 1 are often implicit in a worked answer ("per hour", "a dozen").
                    (!ordinal && value != 0.0 && value != 1.0)
                        .then(|| (value, percent, t.text.to_owned()))
                }
                _ => None,
            })
            .collect()
    };
    let used: Vec<f64> = numbers(answer).into_iter().map(|(v, _, _)| v).collect();
    let same = |a: f64, b: f64| (a - b).abs() <= 1e-9 * a.abs().max(1.0);
    let mut unused: Vec<String> = Vec::new();
    for (value, percent, text) in numbers(question) {
        let mentioned = used
            .iter()
            .any(|u| same(*u, value) || (percent && same(*u, value / 100.0)));
        if !mentioned && !unused.contains(&text) {
            unused.push(text);
        }
    }
    unused
}

/// The first of `phrases` the answer contains (case-insensitively); the one hedge detector,
/// used here and by the router's confidence checks with a policy's phrases.
pub fn hedge<'p, P: AsRef<str>>(answer: &str, phrases: &'p [P]) -> Option<&'p str> {
    let lower = answer.to_lowercase().replace('’', "'");
    phrases
        .iter()
        .map(AsRef::as_ref)
        .find(|p| lower.contains(&p.to_lowercase()))
}

/// Whether the text stops where no finished answer would: an unclosed `<<` calculator
/// annotation or bracket, or a last character that is a letter, digit or operator with no
/// line break after it (finished answers end in punctuation, a closing mark or a newline).
pub fn looks_truncated(text: &str) -> bool {
    if text.trim().is_empty() {
        return true;
    }
    if let Some(open) = text.rfind("<<") {
        if !text[open..].contains(">>") {
            return true;
        }
    }
    let opens = text.matches('(').count();
    let closes = text.matches(')').count();
    if opens > closes + 1 {
        return true;
    }
    if text.ends_with('\n') {
        return false;
    }
    let trimmed = text.trim_end();
    trimmed.ends_with(|c: char| c.is_alphanumeric() || "+-*/=×÷^,(".contains(c))
        && !ends_with_final_number(trimmed)
}

/// `#### 42` or `answer: 42` at the very end is complete even without a full stop.
fn ends_with_final_number(trimmed: &str) -> bool {
    let last_line = trimmed.lines().last().unwrap_or("").to_lowercase();
    (last_line.contains("####") || last_line.contains("answer"))
        && last_line.ends_with(|c: char| c.is_ascii_digit())
}

/// Whether a final result is stated: a `####`, "answer is/:", `\boxed{…}` marker followed by
/// a number, or a number in the closing sentence.
pub fn states_final_answer(text: &str) -> bool {
    let lower = text.to_lowercase();
    for marker in [
        "####",
        "answer is",
        "answer:",
        "\\boxed{",
        "answer would be",
        "answer will be",
    ] {
        if let Some(at) = lower.rfind(marker) {
            let after: String = lower[at + marker.len()..].chars().take(40).collect();
            if after.chars().any(|c| c.is_ascii_digit()) {
                return true;
            }
        }
    }
    last_sentence(text).chars().any(|c| c.is_ascii_digit())
}

/// The last sentence of a text (after the last `.`, `!`, `?` or newline that is followed by
/// more text), ignoring decimal points.
fn last_sentence(text: &str) -> &str {
    let trimmed = text.trim_end().trim_end_matches(['.', '!', '?']);
    let bytes = trimmed.as_bytes();
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let decimal_point = b == b'.'
            && i > 0
            && bytes[i - 1].is_ascii_digit()
            && bytes.get(i + 1).is_some_and(u8::is_ascii_digit);
        if matches!(b, b'.' | b'!' | b'?' | b'\n') && !decimal_point {
            start = i + 1;
        }
    }
    &trimmed[start..]
}

fn tail_of(text: &str, chars: usize) -> String {
    let trimmed = text.trim_end();
    let count = trimmed.chars().count();
    trimmed.chars().skip(count.saturating_sub(chars)).collect()
}

/// Every written calculation in the text whose two sides disagree, as it was written.
/// Checks `<<lhs=rhs>>` calculator annotations and prose equations such as `3 x $15 = $45`
/// or `14 mL + 42 mL = 56 mL`; anything with a variable, or not clearly arithmetic, is skipped
/// rather than guessed at.
pub fn arithmetic_errors(text: &str) -> Vec<String> {
    let mut errors = Vec::new();
    let mut prose = String::with_capacity(text.len());
    let mut rest = text;
    // Calculator annotations first, then the prose with them removed.
    while let Some(open) = rest.find("<<") {
        prose.push_str(&rest[..open]);
        let inner_start = open + 2;
        let Some(close) = rest[inner_start..].find(">>") else {
            rest = "";
            break;
        };
        let inner = &rest[inner_start..inner_start + close];
        if !equation_errors(inner).is_empty() {
            errors.push(format!("<<{inner}>>"));
        }
        rest = &rest[inner_start + close + 2..];
    }
    prose.push_str(rest);

    errors.extend(equation_errors(&prose));
    errors
}

/// The equations of a text whose sides disagree, as written.
fn equation_errors(text: &str) -> Vec<String> {
    let tokens = tokenize(text);
    let mut errors = Vec::new();
    for (i, token) in tokens.iter().enumerate() {
        if !matches!(token.kind, Kind::Eq) {
            continue;
        }
        let lhs = expression_before(&tokens, i);
        let rhs = expression_after(&tokens, i);
        if let (Some(lhs), Some(rhs)) = (lhs, rhs) {
            if let Some(false) = equation_holds(&tokens[lhs.clone()], &tokens[rhs.clone()]) {
                let from = tokens[lhs.start].at;
                // End at the result's last number or bracket, leaving its unit out.
                let to = tokens[rhs.clone()]
                    .iter()
                    .rev()
                    .find(|t| !matches!(t.kind, Kind::Word))
                    .map_or(tokens[rhs.end - 1].end, |t| t.end);
                errors.push(text[from..to].trim().to_owned());
            }
        }
    }
    errors
}

#[derive(Debug, Clone, PartialEq)]
enum Kind {
    Num {
        value: f64,
        percent: bool,
        decimals: u32,
    },
    Op(char),
    Open,
    Close,
    Word,
    Eq,
    /// Sentence punctuation, a line break or anything else that ends an expression.
    Boundary,
}

#[derive(Debug, Clone)]
struct Token<'a> {
    kind: Kind,
    text: &'a str,
    at: usize,
    end: usize,
}

fn tokenize(text: &str) -> Vec<Token<'_>> {
    let bytes = text.as_bytes();
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < text.len() {
        let c = text[i..].chars().next().unwrap_or(' ');
        let width = c.len_utf8();
        let start = i;
        let kind = if c.is_ascii_digit() {
            let mut j = i;
            let mut digits = String::new();
            let mut decimals = 0;
            let mut seen_point = false;
            while j < bytes.len() {
                let b = bytes[j];
                if b.is_ascii_digit() {
                    digits.push(b as char);
                    decimals += u32::from(seen_point);
                    j += 1;
                } else if b == b',' && !seen_point && thousands_group(bytes, j + 1) {
                    j += 1;
                } else if b == b'.'
                    && !seen_point
                    && bytes.get(j + 1).is_some_and(u8::is_ascii_digit)
                {
                    seen_point = true;
                    digits.push('.');
                    j += 1;
                } else {
                    break;
                }
            }
            let percent = bytes.get(j) == Some(&b'%');
            if percent {
                j += 1;
            }
            i = j;
            match digits.parse::<f64>() {
                Ok(value) => Kind::Num {
                    value,
                    percent,
                    decimals,
                },
                Err(_) => Kind::Boundary,
            }
        } else if c.is_alphabetic() {
            let mut j = i;
            while let Some(ch) = text[j..].chars().next() {
                if !(ch.is_alphabetic() || ch == '\'') {
                    break;
                }
                j += ch.len_utf8();
            }
            i = j;
            Kind::Word
        } else {
            i += width;
            match c {
                // Markdown escapes (`3 \\* 4`) and currency signs carry no arithmetic.
                ' ' | '\t' | '$' | '€' | '£' | '\\' => continue,
                '+' | '-' | '−' | '*' | '/' | '×' | '÷' | '·' | '^' => Kind::Op(match c {
                    '−' => '-',
                    '×' | '·' => '*',
                    '÷' => '/',
                    other => other,
                }),
                '(' => Kind::Open,
                ')' => Kind::Close,
                '=' => {
                    // `==`, `<=`, `>=`, `!=` are comparisons, not results.
                    let prev = text[..start].chars().last();
                    let next = text[i..].chars().next();
                    if matches!(prev, Some('=' | '<' | '>' | '!')) || next == Some('=') {
                        Kind::Boundary
                    } else {
                        Kind::Eq
                    }
                }
                _ => Kind::Boundary,
            }
        };
        tokens.push(Token {
            kind,
            text: &text[start..i],
            at: start,
            end: i,
        });
    }
    tokens
}

/// `,` followed by exactly three digits and then no further digit: a thousands separator.
fn thousands_group(bytes: &[u8], from: usize) -> bool {
    bytes.len() >= from + 3
        && bytes[from..from + 3].iter().all(u8::is_ascii_digit)
        && !bytes.get(from + 3).is_some_and(u8::is_ascii_digit)
}

fn is_operand_end(kind: &Kind) -> bool {
    matches!(kind, Kind::Num { .. } | Kind::Close)
}

/// Whether a word is `x` used as a multiplication sign (between two operands).
fn is_times(tokens: &[Token<'_>], i: usize) -> bool {
    matches!(tokens[i].text, "x" | "X")
        && i > 0
        && is_operand_end(&tokens[i - 1].kind)
        && tokens
            .get(i + 1)
            .is_some_and(|t| matches!(t.kind, Kind::Num { .. } | Kind::Open))
}

/// A unit after a quantity ("14 mL +", "3 apples ="): a word of two or more letters right after
/// a number or `)`, followed by an operator, `)` , `=` or the end.
fn is_unit(tokens: &[Token<'_>], i: usize) -> bool {
    tokens[i].text.chars().count() >= 2
        && i > 0
        && is_operand_end(&tokens[i - 1].kind)
        && tokens.get(i + 1).is_none_or(|t| {
            matches!(
                t.kind,
                Kind::Op(_) | Kind::Close | Kind::Eq | Kind::Boundary
            )
        })
}

/// The token range of the expression ending right before the `=` at `eq`, if it is one.
fn expression_before(tokens: &[Token<'_>], eq: usize) -> Option<std::ops::Range<usize>> {
    let mut start = eq;
    while start > 0 {
        let i = start - 1;
        let keep = match tokens[i].kind {
            Kind::Num { .. } | Kind::Op(_) | Kind::Open | Kind::Close => true,
            Kind::Word if is_times(tokens, i) || is_unit(tokens, i) => true,
            // A variable next to the expression: not arithmetic we can check.
            Kind::Word if tokens[i].text.chars().count() == 1 => return None,
            _ => false,
        };
        if !keep {
            break;
        }
        start = i;
    }
    // Drop a leading binary operator or stray `(` left by the cut.
    while start < eq
        && matches!(
            tokens[start].kind,
            Kind::Op('*' | '/' | '^' | '+') | Kind::Close
        )
    {
        start += 1;
    }
    (start < eq).then_some(start..eq)
}

/// The token range of the expression right after the `=` at `eq`, if it is one.
fn expression_after(tokens: &[Token<'_>], eq: usize) -> Option<std::ops::Range<usize>> {
    let mut end = eq + 1;
    while end < tokens.len() {
        let keep = match tokens[end].kind {
            Kind::Num { .. } | Kind::Op(_) | Kind::Open | Kind::Close => true,
            Kind::Word if is_times(tokens, end) || is_unit(tokens, end) => true,
            Kind::Word
                if tokens[end].text.chars().count() == 1
                    && !matches!(tokens[end].text, "a" | "A" | "I") =>
            {
                return None
            }
            _ => false,
        };
        if !keep {
            break;
        }
        end += 1;
    }
    // A trailing operator belongs to a sentence we cut, not to the result.
    while end > eq + 1 && matches!(tokens[end - 1].kind, Kind::Op(_) | Kind::Open) {
        end -= 1;
    }
    (end > eq + 1).then_some(eq + 1..end)
}

/// `Some(true)` when both sides evaluate and agree, `Some(false)` when they disagree, `None`
/// when either side is not plain arithmetic or the left side has no operator (`x = 5`).
fn equation_holds(lhs: &[Token<'_>], rhs: &[Token<'_>]) -> Option<bool> {
    // Different units on the two sides ("2 x 1 hour = 120 minutes") mean a conversion we do
    // not model.
    let units = |side: &[Token<'_>]| -> Vec<String> {
        side.iter()
            .filter(|t| is_unit_word(t))
            .map(|t| t.text.to_lowercase().trim_end_matches('s').to_owned())
            .collect()
    };
    let (lhs_units, rhs_units) = (units(lhs), units(rhs));
    if !lhs_units.is_empty()
        && !rhs_units.is_empty()
        && !lhs_units.iter().any(|u| rhs_units.contains(u))
    {
        return None;
    }
    let lhs: Vec<&Token<'_>> = lhs.iter().filter(|t| !is_unit_word(t)).collect();
    let rhs: Vec<&Token<'_>> = rhs.iter().filter(|t| !is_unit_word(t)).collect();
    let has_operator = lhs
        .iter()
        .any(|t| matches!(t.kind, Kind::Op(_) | Kind::Word));
    if !has_operator {
        return None;
    }
    // "a + b = 96 ÷ 3 = 32" chains results: the left side may equal the right side's first
    // number rather than the whole of it.
    let sign = usize::from(rhs.first().is_some_and(|t| t.kind == Kind::Op('-')));
    let first_number: Vec<&Token<'_>> = rhs.iter().take(sign + 1).copied().collect();
    let mut agreed = None;
    for candidate in [&rhs, &first_number] {
        let decimals = candidate
            .iter()
            .filter_map(|t| match t.kind {
                Kind::Num { decimals, .. } => Some(decimals),
                _ => None,
            })
            .max();
        let Some(decimals) = decimals else { continue };
        // Percent signs are read as "/100" or as bare numbers: accept either reading.
        for percent_as_fraction in [true, false] {
            let (Some(l), Some(r)) = (
                evaluate(&lhs, percent_as_fraction),
                evaluate(candidate, percent_as_fraction),
            ) else {
                continue;
            };
            // An integer result must be exact; a decimal one may be rounded to its digits.
            let tolerance = if decimals == 0 {
                1e-6 * l.abs().max(1.0)
            } else {
                0.5 * 10f64.powi(-(decimals as i32)) + 1e-9
            };
            let ok = (l - r).abs() <= tolerance;
            agreed = Some(agreed.unwrap_or(false) || ok);
        }
    }
    agreed
}

fn is_unit_word(t: &&Token<'_>) -> bool {
    matches!(t.kind, Kind::Word) && !matches!(t.text, "x" | "X")
}

/// Evaluates `+ - * / ^`, parentheses and unary minus (`x` words already mean `*`).
fn evaluate(tokens: &[&Token<'_>], percent_as_fraction: bool) -> Option<f64> {
    let mut parser = Parser {
        tokens,
        pos: 0,
        percent_as_fraction,
    };
    let value = parser.sum()?;
    (parser.pos == tokens.len() && value.is_finite()).then_some(value)
}

struct Parser<'t, 'a> {
    tokens: &'t [&'t Token<'a>],
    pos: usize,
    percent_as_fraction: bool,
}

impl Parser<'_, '_> {
    fn peek_op(&self) -> Option<char> {
        match self.tokens.get(self.pos).map(|t| &t.kind) {
            Some(Kind::Op(c)) => Some(*c),
            Some(Kind::Word) => Some('*'),
            _ => None,
        }
    }

    fn sum(&mut self) -> Option<f64> {
        let mut value = self.product()?;
        while let Some(op @ ('+' | '-')) = self.peek_op() {
            self.pos += 1;
            let rhs = self.product()?;
            value = if op == '+' { value + rhs } else { value - rhs };
        }
        Some(value)
    }

    fn product(&mut self) -> Option<f64> {
        let mut value = self.power()?;
        while let Some(op @ ('*' | '/')) = self.peek_op() {
            self.pos += 1;
            let rhs = self.power()?;
            if op == '/' && rhs == 0.0 {
                return None;
            }
            value = if op == '*' { value * rhs } else { value / rhs };
        }
        Some(value)
    }

    fn power(&mut self) -> Option<f64> {
        let base = self.unary()?;
        if self.peek_op() == Some('^') {
            self.pos += 1;
            let exponent = self.power()?;
            return Some(base.powf(exponent));
        }
        Some(base)
    }

    fn unary(&mut self) -> Option<f64> {
        if self.peek_op() == Some('-') && matches!(self.tokens.get(self.pos)?.kind, Kind::Op(_)) {
            self.pos += 1;
            return self.unary().map(|v| -v);
        }
        self.atom()
    }

    fn atom(&mut self) -> Option<f64> {
        let token = self.tokens.get(self.pos)?;
        self.pos += 1;
        match token.kind {
            Kind::Num { value, percent, .. } => Some(if percent && self.percent_as_fraction {
                value / 100.0
            } else {
                value
            }),
            Kind::Open => {
                let value = self.sum()?;
                match self.tokens.get(self.pos).map(|t| &t.kind) {
                    Some(Kind::Close) => {
                        self.pos += 1;
                        Some(value)
                    }
                    _ => None,
                }
            }
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn concerns(answer: &str) -> Vec<&'static str> {
        check_math_answer("", answer)
            .iter()
            .map(|f| f.concern.as_str())
            .collect()
    }

    #[test]
    fn correct_worked_answer_passes() {
        let answer = " James runs 3 x 60 = <<3*60=180>>180 meters per session.\n\
                      In a week he runs 180 x 3 = <<180*3=540>>540 meters.\n#### 540\n\n";
        let question = "James runs 3 sprints of 60 meters, 3 times a week. How far in a week?";
        let findings = check_math_answer(question, answer);
        assert!(findings.is_empty(), "{findings:?}");
    }

    #[test]
    fn wrong_calculator_annotation_is_flagged() {
        let errors = arithmetic_errors("So 15 x 4 = <<15*4=50>>50 cups.");
        assert_eq!(errors, ["<<15*4=50>>", "15 x 4 = 50"]);
    }

    #[test]
    fn wrong_prose_arithmetic_is_flagged_with_units_and_money() {
        let text = "Daniel will save 10/100 x ($7.50 + $0.50 + $12 + $10) = $3.20.";
        assert_eq!(
            arithmetic_errors(text),
            ["10/100 x ($7.50 + $0.50 + $12 + $10) = $3.20"]
        );
        assert!(
            arithmetic_errors("Saanvi uses 14 mL + 3 * 14 mL = 14 mL + 42 mL = 56 mL of it.")
                .is_empty()
        );
        assert!(arithmetic_errors("He pays 2 x $1,250 = $2,500 in total.").is_empty());
        assert!(arithmetic_errors("That is 30% of 50, so 50 * 30% = 15 people.").is_empty());
        assert!(arithmetic_errors("It takes 10 / 3 = 3.33 hours.").is_empty());
        assert_eq!(
            arithmetic_errors("It takes 10 / 3 = 3 hours."),
            ["10 / 3 = 3"]
        );
    }

    #[test]
    fn escaped_operators_chains_and_conversions_are_read_right() {
        assert!(arithmetic_errors("she uses 17 / (1/4) = 17 \\* 4 = 68 beads").is_empty());
        assert!(arithmetic_errors("12 + 43 + 15 + 4 + 22 = $96 ÷ 3 = $32 each").is_empty());
        assert!(arithmetic_errors("It takes 2 x 1 hour = 120 minutes.").is_empty());
        assert_eq!(arithmetic_errors("So 3 \\* 4 = 13 eggs."), ["3 \\* 4 = 13"]);
    }

    #[test]
    fn chained_annotations_are_checked_link_by_link() {
        assert!(arithmetic_errors("<<8*12+4=96+4=100>>100").is_empty());
        assert!(arithmetic_errors("He has 10000 + $800 = $10800 - $5200 = $5600 left.").is_empty());
    }

    #[test]
    fn quantities_the_answer_skips_are_reported() {
        let question =
            "Bernice drove 325 km in 4 days of a 1955 km trip. How far is left on the 2nd day?";
        let answer = "She still needs 1955 - 325 = 1630 km.\n#### 1630";
        assert_eq!(unused_quantities(question, answer), ["4"]);
        assert!(unused_quantities("A 30% tip on $50?", "50 * 0.3 = 15").is_empty());
    }

    #[test]
    fn equations_with_variables_are_not_judged() {
        assert!(arithmetic_errors("So 200 + 5x = 25x, and x = 10.").is_empty());
        assert!(arithmetic_errors("B = 2 * 140\nB = 280").is_empty());
        assert!(arithmetic_errors("if a + b = 7 then").is_empty());
    }

    #[test]
    fn cut_off_answers_are_truncated() {
        assert_eq!(concerns(" a total of 15 + 25 = <<15+2"), ["truncated"]);
        assert_eq!(concerns("Harald sold 88,00"), ["truncated"]);
        assert_eq!(concerns("she needs 3 x "), ["truncated"]);
        assert!(!looks_truncated("So the answer is 48."));
        assert!(!looks_truncated("#### 540"));
    }

    #[test]
    fn missing_final_answer_is_flagged() {
        assert_eq!(
            concerns("We can set up the following equation:\n"),
            ["no_final_answer"]
        );
        assert!(states_final_answer("Therefore, the house cost $90,000."));
        assert!(states_final_answer("The answer is 7.\nHope that helps!"));
        assert!(!states_final_answer(
            "So there will be no candles that explode."
        ));
    }

    #[test]
    fn hedges_are_flagged() {
        let answer = "Without a value for C, I can't provide a single numerical answer.";
        assert_eq!(concerns(answer), ["no_final_answer", "refusal_or_hedge"]);
        assert_eq!(
            hedge("I’m not sure it is 4.", DEFAULT_HEDGES),
            Some("i'm not sure")
        );
    }
}
