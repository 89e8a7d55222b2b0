//! A small JSON-Schema validator for the subset Slack's 2021 OpenAPI spec uses: `type`
//! (string or list), `properties`, `required`, `additionalProperties` (bool or schema),
//! `items`, `enum`, `$ref` within the document, `allOf` / `anyOf` / `oneOf`, `pattern`,
//! `minItems`, `uniqueItems`. `format`, `title`, `description` are ignored.
//!
//! One convention of that spec's generator needs interpreting: unions are written as
//! `"items": [A, B]` on a schema *without* `"type": "array"` (e.g. `bot_id`, `tz`,
//! `objs_conversation`, `objs_user`). Read literally (JSON Schema draft 4), a tuple `items`
//! constrains nothing on a non-array, so every such field would pass unchecked; we read it
//! as the generator means it, `anyOf: [A, B]`. With `"type": "array"` it stays tuple
//! validation.
//!
//! When no branch of a union matches, the violations of the closest branch are reported,
//! so that each one names a precise field.

use serde_json::Value;

/// One reason an instance does not validate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Violation {
    /// JSON pointer of the offending value (for `additionalProperties` and `required`, the
    /// pointer of the extra / missing property).
    pub pointer: String,
    /// The failing keyword.
    pub keyword: &'static str,
    /// What was wrong.
    pub detail: String,
}

/// A validator over one schema document (for `$ref` resolution).
pub struct Validator<'a> {
    root: &'a Value,
}

fn type_ok(t: &str, v: &Value) -> bool {
    match t {
        "object" => v.is_object(),
        "array" => v.is_array(),
        "string" => v.is_string(),
        "boolean" => v.is_boolean(),
        "null" => v.is_null(),
        "integer" => v.as_i64().is_some() || v.as_u64().is_some(),
        "number" => v.is_number(),
        _ => true,
    }
}

fn esc(s: &str) -> String {
    s.replace('~', "~0").replace('/', "~1")
}

impl<'a> Validator<'a> {
    /// A validator resolving `$ref`s against `root`.
    pub fn new(root: &'a Value) -> Self {
        Validator { root }
    }

    fn resolve(&self, r: &str) -> Option<&'a Value> {
        let path = r.strip_prefix("#/")?;
        let mut cur = self.root;
        for seg in path.split('/') {
            cur = cur.get(seg.replace("~1", "/").replace("~0", "~"))?;
        }
        Some(cur)
    }

    /// Validates `v` against `schema`.
    pub fn validate(&self, schema: &Value, v: &Value) -> Vec<Violation> {
        let mut out = Vec::new();
        self.check(schema, v, "", &mut out, 0);
        out
    }

    fn best_branch(
        &self,
        branches: &[Value],
        v: &Value,
        ptr: &str,
        depth: usize,
    ) -> (usize, Vec<Violation>) {
        let mut best: Option<(usize, Vec<Violation>)> = None;
        for (i, b) in branches.iter().enumerate() {
            let mut errs = Vec::new();
            self.check(b, v, ptr, &mut errs, depth + 1);
            if errs.is_empty() {
                return (i, errs);
            }
            if best.as_ref().is_none_or(|(_, e)| errs.len() < e.len()) {
                best = Some((i, errs));
            }
        }
        best.unwrap_or((0, Vec::new()))
    }

    fn check(&self, schema: &Value, v: &Value, ptr: &str, out: &mut Vec<Violation>, depth: usize) {
        if depth > 64 {
            return;
        }
        let Some(s) = schema.as_object() else {
            return;
        };
        if let Some(Value::String(r)) = s.get("$ref") {
            match self.resolve(r) {
                Some(target) => self.check(target, v, ptr, out, depth + 1),
                None => out.push(Violation {
                    pointer: ptr.into(),
                    keyword: "$ref",
                    detail: format!("unresolvable {r}"),
                }),
            }
            return;
        }
        if let Some(Value::Array(all)) = s.get("allOf") {
            for b in all {
                self.check(b, v, ptr, out, depth + 1);
            }
        }
        for kw in ["anyOf", "oneOf"] {
            if let Some(Value::Array(branches)) = s.get(kw) {
                let (_, errs) = self.best_branch(branches, v, ptr, depth);
                out.extend(errs);
            }
        }
        let declared_array = match s.get("type") {
            Some(Value::String(t)) => t == "array",
            Some(Value::Array(ts)) => ts.iter().any(|t| t == "array"),
            _ => false,
        };
        if let (Some(Value::Array(alts)), false) = (s.get("items"), declared_array) {
            // The generator's union convention (see the module docs).
            let (_, errs) = self.best_branch(alts, v, ptr, depth);
            out.extend(errs);
        }
        match s.get("type") {
            Some(Value::String(t)) if !type_ok(t, v) => {
                out.push(Violation {
                    pointer: ptr.into(),
                    keyword: "type",
                    detail: format!("expected {t}, got {v}"),
                });
                return;
            }
            Some(Value::Array(ts))
                if !ts.iter().any(|t| t.as_str().is_some_and(|t| type_ok(t, v))) =>
            {
                out.push(Violation {
                    pointer: ptr.into(),
                    keyword: "type",
                    detail: format!("expected one of {ts:?}, got {v}"),
                });
                return;
            }
            _ => {}
        }
        if let Some(Value::Array(allowed)) = s.get("enum")
            && !allowed.contains(v)
        {
            out.push(Violation {
                pointer: ptr.into(),
                keyword: "enum",
                detail: format!("{v} not in {}", Value::Array(allowed.clone())),
            });
        }
        if let (Some(Value::String(p)), Value::String(text)) = (s.get("pattern"), v)
            && !regex_match(p, text)
        {
            out.push(Violation {
                pointer: ptr.into(),
                keyword: "pattern",
                detail: format!("{text:?} does not match {p}"),
            });
        }
        if let Value::Object(obj) = v {
            let props = s.get("properties").and_then(Value::as_object);
            if let Some(Value::Array(req)) = s.get("required") {
                for r in req.iter().filter_map(Value::as_str) {
                    if !obj.contains_key(r) {
                        out.push(Violation {
                            pointer: format!("{ptr}/{}", esc(r)),
                            keyword: "required",
                            detail: format!("missing {r}"),
                        });
                    }
                }
            }
            for (k, val) in obj {
                let p = format!("{ptr}/{}", esc(k));
                match props.and_then(|m| m.get(k)) {
                    Some(sub) => self.check(sub, val, &p, out, depth + 1),
                    None => match s.get("additionalProperties") {
                        Some(Value::Bool(false)) => out.push(Violation {
                            pointer: p,
                            keyword: "additionalProperties",
                            detail: format!("unexpected {k}"),
                        }),
                        Some(sub @ Value::Object(_)) => self.check(sub, val, &p, out, depth + 1),
                        _ => {}
                    },
                }
            }
        }
        if let Value::Array(arr) = v {
            match s.get("items") {
                Some(sub @ Value::Object(_)) => {
                    for (i, item) in arr.iter().enumerate() {
                        self.check(sub, item, &format!("{ptr}/{i}"), out, depth + 1);
                    }
                }
                Some(Value::Array(tuple)) if declared_array => {
                    for (i, (item, sub)) in arr.iter().zip(tuple).enumerate() {
                        self.check(sub, item, &format!("{ptr}/{i}"), out, depth + 1);
                    }
                }
                _ => {}
            }
            if let Some(min) = s.get("minItems").and_then(Value::as_u64)
                && (arr.len() as u64) < min
            {
                out.push(Violation {
                    pointer: ptr.into(),
                    keyword: "minItems",
                    detail: format!("{} < {min}", arr.len()),
                });
            }
            if s.get("uniqueItems") == Some(&Value::Bool(true)) {
                for (i, a) in arr.iter().enumerate() {
                    if arr[..i].contains(a) {
                        out.push(Violation {
                            pointer: format!("{ptr}/{i}"),
                            keyword: "uniqueItems",
                            detail: "duplicate".into(),
                        });
                    }
                }
            }
        }
    }
}

// ---------------------------------------------------------------- a tiny regex engine

#[derive(Debug)]
enum Atom {
    Char(char),
    Class(Vec<(char, char)>, bool),
    Group(Vec<Vec<Piece>>),
    Start,
    End,
}

#[derive(Debug)]
struct Piece {
    atom: Atom,
    min: usize,
    max: usize,
}

struct Parser<'p> {
    chars: Vec<char>,
    pos: usize,
    _src: &'p str,
}

impl Parser<'_> {
    fn alternation(&mut self) -> Option<Vec<Vec<Piece>>> {
        let mut alts = vec![self.sequence()?];
        while self.chars.get(self.pos) == Some(&'|') {
            self.pos += 1;
            alts.push(self.sequence()?);
        }
        Some(alts)
    }

    fn sequence(&mut self) -> Option<Vec<Piece>> {
        let mut seq = Vec::new();
        while let Some(&c) = self.chars.get(self.pos) {
            if c == '|' || c == ')' {
                break;
            }
            self.pos += 1;
            let atom = match c {
                '^' => Atom::Start,
                '$' => Atom::End,
                '(' => {
                    let g = self.alternation()?;
                    if self.chars.get(self.pos) != Some(&')') {
                        return None;
                    }
                    self.pos += 1;
                    Atom::Group(g)
                }
                '[' => self.class()?,
                '\\' => {
                    let e = *self.chars.get(self.pos)?;
                    self.pos += 1;
                    match e {
                        'd' => Atom::Class(vec![('0', '9')], false),
                        'w' => {
                            Atom::Class(vec![('a', 'z'), ('A', 'Z'), ('0', '9'), ('_', '_')], false)
                        }
                        other => Atom::Char(other),
                    }
                }
                '.' => Atom::Class(vec![], true),
                other => Atom::Char(other),
            };
            let (min, max) = self.quantifier()?;
            seq.push(Piece { atom, min, max });
        }
        Some(seq)
    }

    fn class(&mut self) -> Option<Atom> {
        let mut negated = false;
        if self.chars.get(self.pos) == Some(&'^') {
            negated = true;
            self.pos += 1;
        }
        let mut ranges = Vec::new();
        loop {
            let c = *self.chars.get(self.pos)?;
            self.pos += 1;
            if c == ']' {
                break;
            }
            let lo = if c == '\\' {
                let e = *self.chars.get(self.pos)?;
                self.pos += 1;
                if e == 'd' {
                    ranges.push(('0', '9'));
                    continue;
                }
                e
            } else {
                c
            };
            if self.chars.get(self.pos) == Some(&'-')
                && self.chars.get(self.pos + 1).is_some_and(|n| *n != ']')
            {
                let hi = *self.chars.get(self.pos + 1)?;
                self.pos += 2;
                ranges.push((lo, hi));
            } else {
                ranges.push((lo, lo));
            }
        }
        Some(Atom::Class(ranges, negated))
    }

    fn quantifier(&mut self) -> Option<(usize, usize)> {
        match self.chars.get(self.pos) {
            Some('?') => {
                self.pos += 1;
                Some((0, 1))
            }
            Some('*') => {
                self.pos += 1;
                Some((0, usize::MAX))
            }
            Some('+') => {
                self.pos += 1;
                Some((1, usize::MAX))
            }
            Some('{') => {
                let end = self.chars[self.pos..].iter().position(|c| *c == '}')? + self.pos;
                let body: String = self.chars[self.pos + 1..end].iter().collect();
                self.pos = end + 1;
                match body.split_once(',') {
                    None => {
                        let n = body.trim().parse().ok()?;
                        Some((n, n))
                    }
                    Some((a, b)) => {
                        let lo = a.trim().parse().ok()?;
                        let hi = if b.trim().is_empty() {
                            usize::MAX
                        } else {
                            b.trim().parse().ok()?
                        };
                        Some((lo, hi))
                    }
                }
            }
            _ => Some((1, 1)),
        }
    }
}

/// Matches `seq[i..]` at `pos`, then `k` (the continuation).
fn match_seq(seq: &[Piece], text: &[char], pos: usize, k: &mut dyn FnMut(usize) -> bool) -> bool {
    let Some((first, rest)) = seq.split_first() else {
        return k(pos);
    };
    match_repeat(first, 0, text, pos, &mut |p| match_seq(rest, text, p, k))
}

fn match_repeat(
    piece: &Piece,
    count: usize,
    text: &[char],
    pos: usize,
    k: &mut dyn FnMut(usize) -> bool,
) -> bool {
    // Greedy: try one more occurrence first, then stop if the minimum is reached.
    if count < piece.max {
        let progressed = match_atom(&piece.atom, text, pos, &mut |p| {
            (p != pos || matches!(piece.atom, Atom::Start | Atom::End))
                && count < piece.max
                && match_repeat(piece, count + 1, text, p, k)
        });
        if progressed {
            return true;
        }
    }
    count >= piece.min && k(pos)
}

fn match_atom(atom: &Atom, text: &[char], pos: usize, k: &mut dyn FnMut(usize) -> bool) -> bool {
    match atom {
        Atom::Start => pos == 0 && k(pos),
        Atom::End => pos == text.len() && k(pos),
        Atom::Char(c) => text.get(pos) == Some(c) && k(pos + 1),
        Atom::Class(ranges, negated) => match text.get(pos) {
            Some(c) => {
                let inside = ranges.iter().any(|(lo, hi)| lo <= c && c <= hi);
                (inside != *negated) && k(pos + 1)
            }
            None => false,
        },
        Atom::Group(alts) => alts.iter().any(|seq| match_seq(seq, text, pos, k)),
    }
}

/// Does `text` match `pattern` somewhere (ECMA semantics: unanchored unless `^`/`$`)?
/// Unparseable patterns count as matching (they are reported by the caller's tests).
pub fn regex_match(pattern: &str, text: &str) -> bool {
    let mut p = Parser {
        chars: pattern.chars().collect(),
        pos: 0,
        _src: pattern,
    };
    let Some(alts) = p.alternation() else {
        return true;
    };
    let chars: Vec<char> = text.chars().collect();
    (0..=chars.len()).any(|start| {
        alts.iter()
            .any(|seq| match_seq(seq, &chars, start, &mut |_| true))
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn regex_subset() {
        assert!(regex_match("^[CGD][A-Z0-9]{8,}$", "C0GENERAL01"));
        assert!(!regex_match("^[CGD][A-Z0-9]{8,}$", "C0GEN"));
        assert!(!regex_match("^[CGD][A-Z0-9]{8,}$", "X0GENERAL01"));
        assert!(regex_match("^\\d{10}\\.\\d{6}$", "1663966382.046509"));
        assert!(!regex_match("^\\d{10}\\.\\d{6}$", "1663966382.0465"));
        assert!(regex_match("^[UW][A-Z0-9]{8,}$|^$", ""));
        assert!(regex_match("^(A[A-Z0-9]{1,})?$", ""));
        assert!(regex_match("^(A[A-Z0-9]{1,})?$", "A0SIMAPP001"));
        assert!(!regex_match("^(A[A-Z0-9]{1,})?$", "B1"));
        assert!(regex_match("^[a-fA-F0-9]{6}$", "9f69e7"));
        assert!(regex_match("b+", "abbbc"));
        assert!(!regex_match("^a{2,3}$", "aaaa"));
    }

    #[test]
    fn validator_subset() {
        let doc = json!({"definitions": {"id": {"type": "string", "pattern": "^U"}}});
        let v = Validator::new(&doc);
        let schema = json!({
            "type": "object", "required": ["id", "n"], "additionalProperties": false,
            "properties": {
                "id": {"$ref": "#/definitions/id"},
                "n": {"type": "integer"},
                "tz": {"items": [{"type": "null"}, {"type": "string"}]},
                "list": {"type": "array", "items": {"type": "string"}, "minItems": 1, "uniqueItems": true},
                "kind": {"enum": ["a", "b"]}
            }
        });
        assert!(
            v.validate(
                &schema,
                &json!({"id": "U1", "n": 1, "tz": null, "list": ["x"], "kind": "a"})
            )
            .is_empty()
        );
        let errs = v.validate(
            &schema,
            &json!({"id": "X1", "tz": 5, "list": ["x", "x"], "kind": "c", "extra": 1}),
        );
        let kw: Vec<&str> = errs.iter().map(|e| e.keyword).collect();
        for want in [
            "required",
            "pattern",
            "type",
            "uniqueItems",
            "enum",
            "additionalProperties",
        ] {
            assert!(kw.contains(&want), "{want} in {errs:?}");
        }
        assert!(errs.iter().any(|e| e.pointer == "/extra"));
        assert!(
            errs.iter()
                .any(|e| e.pointer == "/n" && e.keyword == "required")
        );
    }
}
