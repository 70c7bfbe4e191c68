//! The verifier's words: its stemmer, stopwords, negation cues, number words, antonyms and the
//! words that open a movable phrase.

/// A light suffix-stripping stemmer: enough to match "enabled" with "enable" and "Paris's"
/// with "Paris", deliberately not a linguistic one.
pub(super) fn stem(word: &str) -> String {
    let mut w = word.to_lowercase();
    if let Some(s) = w.strip_suffix("'s") {
        w = s.to_owned();
    }
    let n = w.chars().count();
    let cut = |w: &str, k: usize| w[..w.len() - k].to_owned();
    if n > 5 && w.ends_with("ing") {
        w = cut(&w, 3);
    } else if n > 4 && (w.ends_with("ied") || w.ends_with("ies")) {
        w = cut(&w, 3) + "y";
    } else if n > 4 && (w.ends_with("ed") || w.ends_with("es")) {
        w = cut(&w, 2);
    } else if n > 3 && w.ends_with('s') && !w.ends_with("ss") {
        w = cut(&w, 1);
    }
    if w.chars().count() > 3 && w.ends_with('e') {
        w = cut(&w, 1);
    }
    w
}

pub(super) const NEGATIONS: [&str; 11] = [
    "not", "no", "never", "n't", "cannot", "none", "nobody", "nothing", "nowhere", "neither", "nor",
];

/// Words that are not content: they carry structure, not the topic.
pub(super) const STOPWORDS: &[&str] = &[
    "a", "an", "the", "of", "to", "in", "on", "at", "by", "for", "from", "with", "about", "as",
    "into", "onto", "over", "under", "between", "among", "through", "during", "before", "after",
    "is", "are", "was", "were", "be", "been", "being", "am", "do", "does", "did", "doing", "done",
    "have", "has", "had", "having", "will", "would", "shall", "should", "can", "could", "may",
    "might", "must", "i", "me", "my", "mine", "we", "us", "our", "ours", "you", "your", "yours",
    "he", "him", "his", "she", "her", "hers", "it", "its", "they", "them", "their", "theirs",
    "this", "that", "these", "those", "what", "which", "who", "whom", "whose", "when", "where",
    "why", "how", "whether", "if", "then", "than", "so", "such", "there", "here", "and", "or",
    "but", "nor", "also", "too", "very", "just", "some", "any", "all", "each", "every", "no",
    "not", "own", "same", "other", "another", "more", "most", "much", "many", "few", "less",
    "least", "only", "both", "either", "neither",
];

pub(super) fn is_stopword(lower: &str) -> bool {
    STOPWORDS.contains(&lower)
}

/// Number words and their values ("top five" agrees with "top 5").
pub(super) const NUMBER_WORDS: &[(&str, f64)] = &[
    ("zero", 0.0),
    ("two", 2.0),
    ("three", 3.0),
    ("four", 4.0),
    ("five", 5.0),
    ("six", 6.0),
    ("seven", 7.0),
    ("eight", 8.0),
    ("nine", 9.0),
    ("ten", 10.0),
    ("eleven", 11.0),
    ("twelve", 12.0),
    ("thirteen", 13.0),
    ("fourteen", 14.0),
    ("fifteen", 15.0),
    ("sixteen", 16.0),
    ("seventeen", 17.0),
    ("eighteen", 18.0),
    ("nineteen", 19.0),
    ("twenty", 20.0),
    ("thirty", 30.0),
    ("forty", 40.0),
    ("fifty", 50.0),
    ("sixty", 60.0),
    ("seventy", 70.0),
    ("eighty", 80.0),
    ("ninety", 90.0),
    ("hundred", 100.0),
    ("thousand", 1e3),
    ("million", 1e6),
    ("billion", 1e9),
    ("dozen", 12.0),
    ("first", 1.0),
    ("third", 3.0),
    ("fourth", 4.0),
    ("fifth", 5.0),
    ("sixth", 6.0),
    ("seventh", 7.0),
    ("eighth", 8.0),
    ("ninth", 9.0),
    ("tenth", 10.0),
    ("twice", 2.0),
    ("half", 0.5),
];

/// Pairs of words where using one instead of the other reverses the request. Matched on
/// stems, so inflections count ("enabled", "disabling").
pub(super) const ANTONYMS: &[(&str, &str)] = &[
    ("enable", "disable"),
    ("add", "remove"),
    ("add", "delete"),
    ("before", "after"),
    ("increase", "decrease"),
    ("increase", "reduce"),
    ("with", "without"),
    ("start", "stop"),
    ("open", "close"),
    ("buy", "sell"),
    ("install", "uninstall"),
    ("allow", "deny"),
    ("allow", "block"),
    ("accept", "reject"),
    ("include", "exclude"),
    ("import", "export"),
    ("encrypt", "decrypt"),
    ("encode", "decode"),
    ("compress", "decompress"),
    ("serialize", "deserialize"),
    ("upload", "download"),
    ("push", "pull"),
    ("send", "receive"),
    ("create", "delete"),
    ("insert", "delete"),
    ("show", "hide"),
    ("lock", "unlock"),
    ("connect", "disconnect"),
    ("mount", "unmount"),
    ("attach", "detach"),
    ("subscribe", "unsubscribe"),
    ("follow", "unfollow"),
    ("login", "logout"),
    ("online", "offline"),
    ("ascending", "descending"),
    ("forward", "backward"),
    ("min", "max"),
    ("minimum", "maximum"),
    ("minimize", "maximize"),
    ("first", "last"),
    ("best", "worst"),
    ("better", "worse"),
    ("more", "less"),
    ("most", "least"),
    ("higher", "lower"),
    ("high", "low"),
    ("highest", "lowest"),
    ("gain", "lose"),
    ("win", "lose"),
    ("profit", "loss"),
    ("true", "false"),
    ("positive", "negative"),
    ("above", "below"),
    ("inside", "outside"),
    ("input", "output"),
    ("internal", "external"),
    ("private", "public"),
    ("left", "right"),
    ("young", "old"),
    ("younger", "older"),
    ("youngest", "oldest"),
    ("fast", "slow"),
    ("faster", "slower"),
    ("fastest", "slowest"),
    ("cheap", "expensive"),
    ("big", "small"),
    ("large", "small"),
    ("larger", "smaller"),
    ("bigger", "smaller"),
    ("largest", "smallest"),
    ("biggest", "smallest"),
    ("long", "short"),
    ("longer", "shorter"),
    ("easy", "hard"),
    ("easy", "difficult"),
    ("easier", "harder"),
    ("easiest", "hardest"),
    ("love", "hate"),
    ("like", "dislike"),
    ("success", "failure"),
    ("pass", "fail"),
    ("pros", "cons"),
    ("advantages", "disadvantages"),
    ("strengths", "weaknesses"),
    ("strong", "weak"),
    ("legal", "illegal"),
    ("possible", "impossible"),
    ("safe", "dangerous"),
    ("safe", "unsafe"),
    ("happy", "sad"),
    ("rich", "poor"),
    ("male", "female"),
    ("men", "women"),
    ("man", "woman"),
    ("boy", "girl"),
    ("husband", "wife"),
    ("father", "mother"),
    ("son", "daughter"),
    ("brother", "sister"),
    ("north", "south"),
    ("east", "west"),
    ("northern", "southern"),
    ("eastern", "western"),
    ("day", "night"),
    ("summer", "winter"),
    ("hot", "cold"),
    ("wet", "dry"),
    ("full", "empty"),
    ("early", "late"),
    ("past", "future"),
    ("always", "never"),
    ("same", "different"),
    ("similar", "different"),
    ("top", "bottom"),
    ("upper", "lower"),
    ("uppercase", "lowercase"),
    ("horizontal", "vertical"),
    ("row", "column"),
    ("sync", "async"),
    ("synchronous", "asynchronous"),
    ("mutable", "immutable"),
    ("static", "dynamic"),
    ("agree", "disagree"),
    ("appear", "disappear"),
    ("alive", "dead"),
    ("birth", "death"),
    ("arrival", "departure"),
    ("lend", "borrow"),
    ("buyer", "seller"),
    ("employer", "employee"),
    ("teacher", "student"),
    ("parent", "child"),
    ("client", "server"),
    ("overestimate", "underestimate"),
    ("over", "under"),
    ("up", "down"),
    ("entry", "exit"),
    ("enter", "exit"),
    ("incoming", "outgoing"),
    ("inbound", "outbound"),
    ("read", "write"),
];

/// Coordinators across which swapping two conjuncts keeps the meaning ("X or Y", "X vs Y").
pub(super) const COORDINATORS: [&str; 7] = ["and", "or", "vs", "versus", "nor", "v", "&"];

/// Words that open a phrase free to move: prepositions, subordinators, adverbs.
pub(super) const MODIFIER_HEADS: &[&str] = &[
    "in",
    "on",
    "at",
    "for",
    "as",
    "if",
    "when",
    "while",
    "after",
    "before",
    "during",
    "since",
    "with",
    "without",
    "by",
    "from",
    "into",
    "within",
    "under",
    "over",
    "because",
    "although",
    "though",
    "unless",
    "until",
    "via",
    "per",
    "about",
    "using",
    "now",
    "today",
    "currently",
    "ever",
    "still",
    "again",
    "also",
    "even",
    "already",
    "soon",
    "then",
    "here",
    "there",
    "once",
];

/// One spelling for names written several common ways ("US", "U.S.", "USA", "America").
pub(super) fn canonical_entity(stemmed: &str) -> String {
    match stemmed {
        "us" | "u.s" | "usa" | "u.s.a" | "america" => "usa".to_owned(),
        "uk" | "u.k" | "britain" => "uk".to_owned(),
        _ => stemmed.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stemmer_matches_inflections() {
        for (a, b) in [
            ("enabled", "enable"),
            ("disabling", "disables"),
            ("France's", "france"),
            ("studies", "study"),
        ] {
            assert_eq!(stem(a), stem(b), "{a} / {b}");
        }
    }
}
