//! vCard (RFC 6350 4.0, and 3.0 on input) parsing and writing, and the Google/Outlook-style CSV export.

use crate::error::{DomainError, DomainResult};

/// One card as read: only the properties the address book keeps.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Card {
    /// The line `BEGIN:VCARD` stood on, for reports.
    pub line: usize,
    /// `FN`, or `N` put together when there is no `FN`.
    pub name: Option<String>,
    /// `(TYPE, number)` of each `TEL`.
    pub numbers: Vec<(String, String)>,
    /// `(TYPE, address)` of each `EMAIL`.
    pub emails: Vec<(String, String)>,
    /// `CATEGORIES`, split.
    pub categories: Vec<String>,
    /// `NOTE`.
    pub note: Option<String>,
}

/// A card as written: what a contact holds, with its tags by name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CardOut<'a> {
    /// The name.
    pub name: &'a str,
    /// `(type, number)`.
    pub numbers: Vec<(&'a str, &'a str)>,
    /// `(type, email)`.
    pub emails: Vec<(&'a str, &'a str)>,
    /// Tag names.
    pub categories: Vec<&'a str>,
    /// The note.
    pub note: Option<&'a str>,
}

fn broken(line: usize, why: impl std::fmt::Display) -> DomainError {
    DomainError::invalid("vcard", format!("line {line}: {why}"))
}

/// Splits the input into logical lines (RFC 6350 §3.2 unfolding), each with the number of the
/// physical line it starts on.
fn unfold(text: &str) -> Vec<(usize, String)> {
    let mut out: Vec<(usize, String)> = Vec::new();
    for (i, raw) in text.split('\n').enumerate() {
        let raw = raw.strip_suffix('\r').unwrap_or(raw);
        let mut chars = raw.chars();
        match (chars.next(), out.last_mut()) {
            (Some(' ' | '\t'), Some((_, last))) => last.push_str(chars.as_str()),
            _ => out.push((i + 1, raw.to_owned())),
        }
    }
    out
}

/// Undoes text escapes: `\\`, `\,`, `\;`, `\n`/`\N`. A raw CR inside a value reads as a
/// newline: the writer has no way to write a CR back, so an imported note must not hold one, or
/// export and re-import would change it.
fn unescape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\r' {
            out.push('\n');
            continue;
        }
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('n' | 'N' | '\r') => out.push('\n'),
            Some(other) => out.push(other),
            None => out.push('\\'),
        }
    }
    out
}

/// Splits on `sep` where it is not escaped by a backslash.
fn split_unescaped(s: &str, sep: char) -> Vec<String> {
    let mut parts = Vec::new();
    let mut cur = String::new();
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            cur.push(c);
            if let Some(n) = chars.next() {
                cur.push(n);
            }
        } else if c == sep {
            parts.push(std::mem::take(&mut cur));
        } else {
            cur.push(c);
        }
    }
    parts.push(cur);
    parts
}

/// Undoes RFC 6868 parameter escapes: `^^` is `^`, `^'` is `"`, `^n` a newline; any other `^`
/// stays as it is.
fn caret_decode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        let decoded = match (c, chars.peek()) {
            ('^', Some('^')) => Some('^'),
            ('^', Some('\'')) => Some('"'),
            ('^', Some('n' | 'N')) => Some('\n'),
            _ => None,
        };
        match decoded {
            Some(d) => {
                out.push(d);
                chars.next();
            }
            None => out.push(c),
        }
    }
    out
}

/// One content line: upper-cased name, its `TYPE` values, and the raw value.
struct Line {
    name: String,
    types: Vec<String>,
    value: String,
}

/// Parses `[group.]name *(;param) : value`. Quoted parameter values may hold `:` and `;`.
fn content_line(n: usize, line: &str) -> DomainResult<Line> {
    let mut in_quotes = false;
    let mut colon = None;
    for (i, c) in line.char_indices() {
        match c {
            '"' => in_quotes = !in_quotes,
            ':' if !in_quotes => {
                colon = Some(i);
                break;
            }
            _ => {}
        }
    }
    let colon = colon.ok_or_else(|| broken(n, "expected NAME:value"))?;
    let (head, value) = (&line[..colon], &line[colon + 1..]);
    let mut params = split_params(head).into_iter();
    let name = params.next().unwrap_or_default();
    let name = name
        .rsplit('.')
        .next()
        .unwrap_or_default()
        .to_ascii_uppercase();
    if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
        return Err(broken(n, "bad property name"));
    }
    let mut types = Vec::new();
    for p in params {
        let values = match p.split_once('=') {
            Some((k, v)) if k.eq_ignore_ascii_case("TYPE") => v,
            Some(_) => continue,
            // vCard 3.0 allows bare types (`TEL;HOME;VOICE:`), read as a `TYPE` value list so
            // that what the writer puts in one `TYPE` reads back the same.
            None => p.as_str(),
        };
        for t in values.trim_matches('"').split(',') {
            let t = t.trim_matches('"').trim();
            if !t.is_empty() {
                types.push(caret_decode(t));
            }
        }
    }
    Ok(Line {
        name,
        types,
        value: value.to_owned(),
    })
}

/// Splits the part before the colon on `;` outside quotes.
fn split_params(head: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut in_quotes = false;
    for c in head.chars() {
        match c {
            '"' => {
                in_quotes = !in_quotes;
                cur.push(c);
            }
            ';' if !in_quotes => out.push(std::mem::take(&mut cur)),
            _ => cur.push(c),
        }
    }
    out.push(cur);
    out
}

/// The type labels as one string, as the address book keeps them. `PREF` and `VOICE`/`INTERNET`
/// say nothing a label needs.
fn label(types: &[String]) -> String {
    types
        .iter()
        .filter(|t| {
            !["pref", "voice", "internet"]
                .iter()
                .any(|skip| t.eq_ignore_ascii_case(skip))
        })
        .cloned()
        .collect::<Vec<_>>()
        .join(",")
}

/// The most cards one import reads.
pub const CARDS_MAX: usize = 10_000;

/// Parses vCard 3.0 or 4.0 text. Any structural error names its line; property values are
/// not validated here (the importer skips cards the address book would refuse).
pub fn parse(input: &[u8]) -> DomainResult<Vec<Card>> {
    let text = match std::str::from_utf8(input) {
        Ok(t) => t,
        Err(e) => {
            let line = input[..e.valid_up_to()]
                .iter()
                .filter(|b| **b == b'\n')
                .count()
                + 1;
            return Err(broken(line, "not UTF-8"));
        }
    };
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut cards = Vec::new();
    let mut current: Option<(Card, Option<String>)> = None;
    for (n, raw) in unfold(text) {
        if raw.trim().is_empty() {
            continue;
        }
        let line = content_line(n, &raw)?;
        match (line.name.as_str(), current.as_mut()) {
            ("BEGIN", None) if line.value.trim().eq_ignore_ascii_case("VCARD") => {
                if cards.len() >= CARDS_MAX {
                    return Err(broken(n, format!("more than {CARDS_MAX} cards")));
                }
                current = Some((
                    Card {
                        line: n,
                        ..Card::default()
                    },
                    None,
                ));
            }
            ("BEGIN", _) => return Err(broken(n, "BEGIN inside a card, or not BEGIN:VCARD")),
            (_, None) => return Err(broken(n, "expected BEGIN:VCARD")),
            ("END", Some(_)) => {
                if !line.value.trim().eq_ignore_ascii_case("VCARD") {
                    return Err(broken(n, "expected END:VCARD"));
                }
                if let Some((mut card, n_name)) = current.take() {
                    if card.name.is_none() {
                        card.name = n_name;
                    }
                    cards.push(card);
                }
            }
            ("VERSION", Some(_)) if !matches!(line.value.trim(), "3.0" | "4.0") => {
                return Err(broken(n, "only vCard 3.0 and 4.0 are read"));
            }
            ("FN", Some((card, _))) => card.name = Some(unescape(&line.value)),
            ("N", Some((_, n_name))) => {
                // family;given;additional;prefix;suffix → "given additional family".
                let parts: Vec<String> = split_unescaped(&line.value, ';')
                    .iter()
                    .map(|p| unescape(p))
                    .collect();
                let pick = |i: usize| parts.get(i).map(String::as_str).unwrap_or("");
                let joined = [pick(3), pick(1), pick(2), pick(0), pick(4)]
                    .iter()
                    .filter(|s| !s.trim().is_empty())
                    .copied()
                    .collect::<Vec<_>>()
                    .join(" ");
                if !joined.is_empty() {
                    *n_name = Some(joined);
                }
            }
            ("TEL", Some((card, _))) => {
                let v = unescape(&line.value);
                let v = v.strip_prefix("tel:").unwrap_or(&v).to_owned();
                card.numbers.push((label(&line.types), v));
            }
            ("EMAIL", Some((card, _))) => {
                let v = unescape(&line.value);
                let v = v.strip_prefix("mailto:").unwrap_or(&v).to_owned();
                card.emails.push((label(&line.types), v));
            }
            ("CATEGORIES", Some((card, _))) => {
                for c in split_unescaped(&line.value, ',') {
                    let c = unescape(&c).trim().to_owned();
                    if !c.is_empty() && !card.categories.contains(&c) {
                        card.categories.push(c);
                    }
                }
            }
            ("NOTE", Some((card, _))) => card.note = Some(unescape(&line.value)),
            _ => {}
        }
    }
    if let Some((card, _)) = current {
        return Err(broken(card.line, "BEGIN:VCARD without END:VCARD"));
    }
    // An empty upload is a client that lost its file, not an address book with no cards.
    if cards.is_empty() {
        return Err(DomainError::invalid("vcard", "holds no BEGIN:VCARD card"));
    }
    Ok(cards)
}

/// Escapes a text value.
fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            ',' => out.push_str("\\,"),
            ';' => out.push_str("\\;"),
            '\n' => out.push_str("\\n"),
            '\r' => {}
            c => out.push(c),
        }
    }
    out
}

/// A `TYPE` parameter, quoted. A quote cannot appear in one, so `"` and `^` are written as
/// RFC 6868 says (`^'`, `^^`), which the reader undoes; controls (never in a stored label) are
/// dropped.
fn type_param(label: &str) -> String {
    let mut clean = String::with_capacity(label.len());
    for c in label.chars() {
        match c {
            '^' => clean.push_str("^^"),
            '"' => clean.push_str("^'"),
            c if c.is_control() => {}
            c => clean.push(c),
        }
    }
    if clean.is_empty() {
        String::new()
    } else {
        format!(";TYPE=\"{clean}\"")
    }
}

/// Appends a content line, folded at 75 octets on character boundaries.
fn put_line(out: &mut String, line: &str) {
    let mut width = 0;
    for c in line.chars() {
        if width + c.len_utf8() > 75 {
            out.push_str("\r\n ");
            width = 1;
        }
        out.push(c);
        width += c.len_utf8();
    }
    out.push_str("\r\n");
}

/// Writes cards as vCard 4.0.
pub fn write(cards: &[CardOut<'_>]) -> String {
    let mut out = String::new();
    for card in cards {
        put_line(&mut out, "BEGIN:VCARD");
        put_line(&mut out, "VERSION:4.0");
        put_line(&mut out, &format!("FN:{}", escape(card.name)));
        for (kind, number) in &card.numbers {
            put_line(
                &mut out,
                &format!("TEL;VALUE=text{}:{}", type_param(kind), escape(number)),
            );
        }
        for (kind, email) in &card.emails {
            put_line(
                &mut out,
                // The reader drops one `mailto:`; an address that starts with one keeps it.
                &format!(
                    "EMAIL{}:{}{}",
                    type_param(kind),
                    if email.starts_with("mailto:") {
                        "mailto:"
                    } else {
                        ""
                    },
                    escape(email)
                ),
            );
        }
        if !card.categories.is_empty() {
            let cats: Vec<String> = card.categories.iter().map(|c| escape(c)).collect();
            put_line(&mut out, &format!("CATEGORIES:{}", cats.join(",")));
        }
        if let Some(note) = card.note {
            put_line(&mut out, &format!("NOTE:{}", escape(note)));
        }
        put_line(&mut out, "END:VCARD");
    }
    out
}

/// Quotes a CSV field when it needs it (RFC 4180).
fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_owned()
    }
}

/// Writes cards as CSV with the columns of Google Contacts' export (which Outlook also reads):
/// `Name`, `Notes`, `Group Membership` (tags joined by ` ::: `), then `E-mail N - Type`,
/// `E-mail N - Value`, `Phone N - Type`, `Phone N - Value` for as many as the widest card has.
pub fn write_csv(cards: &[CardOut<'_>]) -> String {
    let emails = cards
        .iter()
        .map(|c| c.emails.len())
        .max()
        .unwrap_or(0)
        .max(1);
    let phones = cards
        .iter()
        .map(|c| c.numbers.len())
        .max()
        .unwrap_or(0)
        .max(1);
    let mut header: Vec<String> = vec!["Name".into(), "Notes".into(), "Group Membership".into()];
    for i in 1..=emails {
        header.push(format!("E-mail {i} - Type"));
        header.push(format!("E-mail {i} - Value"));
    }
    for i in 1..=phones {
        header.push(format!("Phone {i} - Type"));
        header.push(format!("Phone {i} - Value"));
    }
    let mut out = header.join(",");
    out.push_str("\r\n");
    for card in cards {
        let mut row = vec![
            csv_field(card.name),
            csv_field(card.note.unwrap_or("")),
            csv_field(&card.categories.join(" ::: ")),
        ];
        for i in 0..emails {
            let (k, v) = card.emails.get(i).copied().unwrap_or(("", ""));
            row.push(csv_field(k));
            row.push(csv_field(v));
        }
        for i in 0..phones {
            let (k, v) = card.numbers.get(i).copied().unwrap_or(("", ""));
            row.push(csv_field(k));
            row.push(csv_field(v));
        }
        out.push_str(&row.join(","));
        out.push_str("\r\n");
    }
    out
}

#[cfg(test)]
mod tests;
