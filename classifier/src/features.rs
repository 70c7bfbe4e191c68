//! Cheap text features of a prompt: length, code, math, questions and constraints, multi-step
//! and reasoning cues, requested output format, language. Each has a stable name (used in the
//! model's weights file and in [`crate::Reason`]s) and is computed in one pass or a few short
//! scans over the text, in well under 0.2 ms for a typical prompt.

/// Names of the features, in the order of [`Features::values`].
pub const NAMES: [&str; COUNT] = [
    "length_tokens",
    "line_count",
    "code_block",
    "code_symbols",
    "math_notation",
    "number_count",
    "digit_share",
    "question_count",
    "constraint_count",
    "multi_step_cue",
    "reasoning_cue",
    "output_format",
    "multiple_choice",
    "negation_cue",
    "non_english_share",
    "avg_word_length",
    "long_word_share",
    "capitalized_share",
];

/// How many features there are.
pub const COUNT: usize = 18;

/// The features of one prompt, in [`NAMES`] order. Counts are `ln(1 + count)` so that a very
/// long prompt does not dominate a linear model; shares are in [0, 1].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Features {
    /// One value per name in [`NAMES`].
    pub values: [f32; COUNT],
}

impl Features {
    /// The value of the named feature, if there is such a feature.
    pub fn get(&self, name: &str) -> Option<f32> {
        NAMES
            .iter()
            .position(|n| *n == name)
            .map(|i| self.values[i])
    }

    /// `(name, value)` pairs in [`NAMES`] order.
    pub fn named(&self) -> impl Iterator<Item = (&'static str, f32)> + '_ {
        NAMES.iter().copied().zip(self.values.iter().copied())
    }
}

/// Rough token count of a text for models with ~4 characters per token (GPT-style BPE): the
/// mean of a character-based and a word-based estimate, which stays close for prose, code and
/// numbers alike without loading a tokenizer.
pub fn estimate_tokens(text: &str) -> usize {
    let chars = text.chars().count();
    let words = text.split_whitespace().count();
    (chars.div_ceil(4) + (words * 4).div_ceil(3)).div_ceil(2)
}

/// Words that order steps or chain quantities ("first … then …", "each", "remaining").
const MULTI_STEP_WORDS: &[&str] = &[
    "first",
    "then",
    "next",
    "after",
    "afterwards",
    "finally",
    "step",
    "steps",
    "before",
    "remaining",
    "rest",
    "each",
    "every",
    "per",
    "total",
    "altogether",
    "respectively",
    "twice",
    "half",
    "times",
];

/// Words that ask for inference, justification or calculation.
const REASONING_WORDS: &[&str] = &[
    "why",
    "explain",
    "prove",
    "proof",
    "derive",
    "justify",
    "analyze",
    "analyse",
    "evaluate",
    "compare",
    "reason",
    "implies",
    "therefore",
    "because",
    "suppose",
    "assume",
    "calculate",
    "compute",
    "solve",
    "determine",
    "estimate",
    "infer",
    "conclude",
    "argument",
    "valid",
];

/// Words and phrases that constrain the answer.
const CONSTRAINT_WORDS: &[&str] = &[
    "must", "should", "exactly", "without", "only", "ensure", "limit", "avoid", "include",
    "maximum", "minimum", "require", "required", "strictly",
];

/// Multi-word constraint phrases (matched on the lower-cased text).
const CONSTRAINT_PHRASES: &[&str] = &[
    "at least",
    "at most",
    "no more than",
    "no less than",
    "do not",
    "don't",
    "make sure",
    "less than",
    "more than",
];

/// Words that ask for a specific output format.
const FORMAT_WORDS: &[&str] = &[
    "json",
    "yaml",
    "csv",
    "xml",
    "table",
    "list",
    "bullet",
    "bullets",
    "markdown",
    "format",
    "code",
    "function",
    "script",
    "essay",
    "poem",
    "email",
    "letter",
    "summary",
    "summarize",
    "outline",
    "words",
    "sentences",
    "paragraph",
    "paragraphs",
];

/// Upper-case words that flip what a question asks ("Which is NOT …", "all EXCEPT …").
const NEGATION_CAPS: &[&str] = &["NOT", "EXCEPT", "LEAST", "FALSE", "INCORRECT", "NEVER"];

/// Computes every feature of a prompt.
pub fn extract(text: &str) -> Features {
    let lower = text.to_lowercase();
    let chars = CharCounts::of(text);
    let words = WordCounts::of(text, &lower);
    let layout = Layout::of(text);
    let math_markup = [
        "\\frac", "\\sqrt", "$", "sqrt(", "log(", "sin(", "cos(", "lim ",
    ]
    .iter()
    .map(|m| lower.matches(m).count())
    .sum::<usize>();
    let math_ops = count_numeric_operators(text);
    let ln1p = |n: usize| (n as f32).ln_1p();
    let share = |part: usize, whole: usize| {
        if whole == 0 {
            0.0
        } else {
            part as f32 / whole as f32
        }
    };
    let mut v = [0f32; COUNT];
    v[0] = ln1p(estimate_tokens(text));
    v[1] = ln1p(layout.lines);
    v[2] = f32::from(u8::from(layout.fences >= 2 || layout.code_lines >= 3));
    v[3] = share(chars.code, chars.non_space);
    v[4] = ln1p(chars.math + math_markup + math_ops);
    v[5] = ln1p(words.numbers);
    v[6] = share(chars.digits, chars.non_space);
    v[7] = ln1p(chars.questions);
    v[8] = ln1p(words.constraints);
    v[9] = ln1p(words.multi_step);
    v[10] = ln1p(words.reasoning);
    v[11] = ln1p(words.formats);
    v[12] = f32::from(u8::from(layout.options >= 3));
    v[13] = ln1p(words.negations);
    v[14] = share(chars.non_ascii_letters, chars.letters);
    v[15] = if words.words == 0 {
        0.0
    } else {
        words.word_chars as f32 / words.words as f32
    };
    v[16] = share(words.long_words, words.words);
    v[17] = share(words.capitalized, words.words);
    Features { values: v }
}

/// Character classes of a prompt, whitespace left out.
#[derive(Default)]
struct CharCounts {
    non_space: usize,
    digits: usize,
    code: usize,
    math: usize,
    letters: usize,
    non_ascii_letters: usize,
    questions: usize,
}

impl CharCounts {
    fn of(text: &str) -> Self {
        let mut n = Self::default();
        for c in text.chars() {
            if c.is_whitespace() {
                continue;
            }
            n.non_space += 1;
            if c.is_ascii_digit() {
                n.digits += 1;
            } else if c.is_alphabetic() {
                n.letters += 1;
                if !c.is_ascii() {
                    n.non_ascii_letters += 1;
                }
            }
            match c {
                '{' | '}' | ';' | '[' | ']' | '_' | '<' | '>' | '|' | '\\' | '`' => n.code += 1,
                '^' | '√' | '∫' | '∑' | 'π' | '≤' | '≥' | '≠' | '±' | '×' | '÷' | '∞' | '∂'
                | '≈' | '∈' | '∀' | '∃' | '→' | '⊂' | '∪' | '∩' => n.math += 1,
                '?' => n.questions += 1,
                _ => {}
            }
        }
        n
    }
}

/// Words and numbers of a prompt, and the cue words and phrases it holds.
#[derive(Default)]
struct WordCounts {
    words: usize,
    word_chars: usize,
    long_words: usize,
    capitalized: usize,
    numbers: usize,
    multi_step: usize,
    reasoning: usize,
    constraints: usize,
    formats: usize,
    negations: usize,
}

impl WordCounts {
    fn of(text: &str, lower: &str) -> Self {
        let mut n = Self::default();
        let mut after_sentence_end = true;
        for raw in text.split_whitespace() {
            let token = raw.trim_matches(|c: char| !c.is_alphanumeric());
            let ends_sentence = raw.ends_with(['.', '!', '?', ':']);
            if token.is_empty() {
                after_sentence_end |= ends_sentence;
                continue;
            }
            if token.chars().any(|c| c.is_ascii_digit())
                && token
                    .chars()
                    .all(|c| c.is_ascii_digit() || matches!(c, '.' | ',' | '/'))
            {
                n.numbers += 1;
            } else if token.chars().all(char::is_alphabetic) {
                n.word(token, after_sentence_end);
            }
            after_sentence_end = ends_sentence;
        }
        n.constraints += CONSTRAINT_PHRASES
            .iter()
            .map(|p| lower.matches(p).count())
            .sum::<usize>();
        n.multi_step += lower.matches("step by step").count() + lower.matches("how many").count();
        n.reasoning += lower.matches("what if").count();
        n.negations += lower.matches("which of the following is not").count()
            + lower.matches(" except").count();
        n
    }

    /// Counts one alphabetic word.
    fn word(&mut self, token: &str, after_sentence_end: bool) {
        self.words += 1;
        let len = token.chars().count();
        self.word_chars += len;
        self.long_words += usize::from(len >= 10);
        if !after_sentence_end && token.chars().next().is_some_and(char::is_uppercase) {
            self.capitalized += 1;
        }
        if NEGATION_CAPS.contains(&token) {
            self.negations += 1;
        }
        let word = token.to_lowercase();
        let w = word.as_str();
        self.multi_step += usize::from(MULTI_STEP_WORDS.contains(&w));
        self.reasoning += usize::from(REASONING_WORDS.contains(&w));
        self.constraints += usize::from(CONSTRAINT_WORDS.contains(&w));
        self.formats += usize::from(FORMAT_WORDS.contains(&w));
    }
}

/// How a prompt is laid out: lines, code fences and code-like lines, answer options.
struct Layout {
    lines: usize,
    fences: usize,
    code_lines: usize,
    options: usize,
}

impl Layout {
    fn of(text: &str) -> Self {
        let lines: Vec<&str> = text.lines().collect();
        let code_lines = lines
            .iter()
            .filter(|l| {
                let t = l.trim_end();
                (l.starts_with("    ") || l.starts_with('\t')) && !t.trim().is_empty()
                    || t.ends_with(';')
                    || t.ends_with('{')
                    || t.trim_start().starts_with("def ")
                    || t.trim_start().starts_with("fn ")
                    || t.trim_start().starts_with("return ")
            })
            .count();
        Self {
            lines: lines.len(),
            fences: text.matches("```").count(),
            code_lines,
            options: lines.iter().filter(|l| is_option_line(l)).count(),
        }
    }
}

/// Counts arithmetic operators written between numbers or variables ("3 + 4", "2x^2", "a = b"),
/// the kind of notation a word problem or an equation carries.
fn count_numeric_operators(text: &str) -> usize {
    let bytes = text.as_bytes();
    let mut count = 0;
    for (i, &b) in bytes.iter().enumerate() {
        if !matches!(b, b'+' | b'-' | b'*' | b'/' | b'=' | b'^') {
            continue;
        }
        let before = bytes[..i].iter().rev().find(|c| **c != b' ');
        let after = bytes[i + 1..].iter().find(|c| **c != b' ');
        let operand = |c: Option<&u8>| c.is_some_and(|c| c.is_ascii_alphanumeric() || *c == b')');
        // A hyphen inside a word ("well-known") is not arithmetic: ask for a digit on one side.
        let numeric = |c: Option<&u8>| c.is_some_and(u8::is_ascii_digit);
        if operand(before) && operand(after) && (b != b'-' || numeric(before) || numeric(after)) {
            count += 1;
        }
    }
    count
}

/// A line like `A. text`, `(b) text` or `C) text`: an answer option of a multiple-choice question.
fn is_option_line(line: &str) -> bool {
    let t = line.trim_start();
    let t = t.strip_prefix('(').unwrap_or(t);
    let mut chars = t.chars();
    match (chars.next(), chars.next()) {
        (Some(letter), Some('.' | ')' | ':')) => letter.is_ascii_alphabetic(),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feature(text: &str, name: &str) -> f32 {
        extract(text).get(name).unwrap()
    }

    #[test]
    fn names_and_values_line_up() {
        assert_eq!(NAMES.len(), COUNT);
        let unique: std::collections::HashSet<_> = NAMES.iter().collect();
        assert_eq!(unique.len(), COUNT);
    }

    #[test]
    fn code_blocks_are_seen() {
        let code = "Fix this:\n```rust\nfn main() {\n    let x = 1;\n}\n```";
        assert_eq!(feature(code, "code_block"), 1.0);
        assert!(
            feature(code, "code_symbols") > feature("Fix this sentence please.", "code_symbols")
        );
        assert_eq!(feature("What is the capital of France?", "code_block"), 0.0);
    }

    #[test]
    fn math_and_numbers_are_seen() {
        let math = "Solve 3x^2 + 2x - 5 = 0 and compute \\frac{1}{2} of 14.";
        assert!(feature(math, "math_notation") > 1.0);
        assert!(feature(math, "number_count") > 1.0);
        assert_eq!(
            feature("A well-known fact about cats.", "math_notation"),
            0.0
        );
    }

    #[test]
    fn multiple_choice_options_are_seen() {
        let mc = "Which is NOT a prime?\nA. 2\nB. 3\nC. 4\nD. 5\nAnswer:";
        assert_eq!(feature(mc, "multiple_choice"), 1.0);
        assert!(feature(mc, "negation_cue") > 0.0);
        assert_eq!(feature("Write a poem.", "multiple_choice"), 0.0);
    }

    #[test]
    fn cues_and_format_requests_are_counted() {
        let p = "First explain why, then list the steps as JSON. You must use at most 3 bullets.";
        assert!(feature(p, "multi_step_cue") > 0.0);
        assert!(feature(p, "reasoning_cue") > 0.0);
        assert!(feature(p, "output_format") > 0.0);
        assert!(feature(p, "constraint_count") > 0.0);
        assert_eq!(feature(p, "question_count"), 0.0);
    }

    #[test]
    fn non_english_share_measures_letters_outside_ascii() {
        assert_eq!(feature("plain english", "non_english_share"), 0.0);
        assert!(feature("Привет, как дела?", "non_english_share") > 0.9);
    }

    #[test]
    fn empty_prompt_has_finite_features() {
        assert!(extract("").values.iter().all(|v| v.is_finite()));
    }

    #[test]
    fn token_estimate_is_in_the_right_range() {
        let text = "The quick brown fox jumps over the lazy dog.";
        let n = estimate_tokens(text);
        assert!((9..=14).contains(&n), "{n}");
        assert_eq!(estimate_tokens(""), 0);
    }
}
