//! Strings matching the simple regular expressions of schema constraints: literal
//! characters, character classes such as `[a-zA-Z0-9]`, and `{n}` repeats.

use rand::Rng;

enum Piece {
    Literal(char),
    Class(Vec<char>),
}

pub struct Pattern(Vec<(Piece, usize)>);

impl Pattern {
    /// `None` for anything beyond classes, literals and fixed repeats.
    pub fn parse(regex: &str) -> Option<Pattern> {
        let chars: Vec<char> = regex.chars().collect();
        let mut pieces = Vec::new();
        let mut i = 0;
        while i < chars.len() {
            let piece = match chars[i] {
                '[' => {
                    let end = chars[i..].iter().position(|c| *c == ']')? + i;
                    let mut set = Vec::new();
                    let mut j = i + 1;
                    while j < end {
                        if j + 2 < end && chars[j + 1] == '-' {
                            set.extend((chars[j]..=chars[j + 2]).collect::<Vec<_>>());
                            j += 3;
                        } else {
                            set.push(chars[j]);
                            j += 1;
                        }
                    }
                    i = end + 1;
                    Piece::Class(set)
                }
                '\\' => {
                    i += 2;
                    Piece::Literal(*chars.get(i - 1)?)
                }
                c if "()|*+?.^$".contains(c) => return None,
                c => {
                    i += 1;
                    Piece::Literal(c)
                }
            };
            let mut count = 1;
            if chars.get(i) == Some(&'{') {
                let end = chars[i..].iter().position(|c| *c == '}')? + i;
                count = chars[i + 1..end].iter().collect::<String>().parse().ok()?;
                i = end + 1;
            }
            pieces.push((piece, count));
        }
        Some(Pattern(pieces))
    }

    pub fn sample(&self, rng: &mut impl Rng) -> String {
        let mut out = String::new();
        for (piece, count) in &self.0 {
            for _ in 0..*count {
                match piece {
                    Piece::Literal(c) => out.push(*c),
                    Piece::Class(set) => out.push(set[rng.random_range(0..set.len())]),
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn samples_match_their_patterns() {
        let mut rng = rand::rngs::SmallRng::seed_from_u64(1);
        for (re, check) in [
            ("E020[0-9]{5}", regex_like as fn(&str) -> bool),
            ("[a-zA-Z]{2}[0-9]{2}[a-zA-Z]", hrg_like),
        ] {
            let p = Pattern::parse(re).unwrap();
            for _ in 0..50 {
                assert!(check(&p.sample(&mut rng)), "{re}");
            }
        }
        assert!(Pattern::parse("a(b|c)").is_none());
    }

    fn regex_like(s: &str) -> bool {
        s.len() == 9 && s.starts_with("E020") && s[4..].chars().all(|c| c.is_ascii_digit())
    }

    fn hrg_like(s: &str) -> bool {
        let b = s.as_bytes();
        b.len() == 5 && b[0].is_ascii_alphabetic() && b[1].is_ascii_alphabetic() && b[2].is_ascii_digit() && b[3].is_ascii_digit() && b[4].is_ascii_alphabetic()
    }
}
