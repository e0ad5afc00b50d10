//! Field paths: object keys joined by `.`, array items as `[]` (`context.os`,
//! `items[].id`, `matrix[][]`). A key holding `.`, `[`, `]` or `\` has them escaped with `\`,
//! so that every path splits back into its segments.

/// One step of a path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Segment {
    /// An object key (unescaped).
    Key(String),
    /// The items of an array.
    Items,
}

/// Appends `key` to `path` as a new segment (`at_root`: the path is still empty, so no `.`;
/// an empty path cannot tell, as the first key may be empty).
pub(crate) fn push_key(path: &mut String, key: &str, at_root: bool) {
    if !at_root {
        path.push('.');
    }
    if key.contains(['.', '[', ']', '\\']) {
        for c in key.chars() {
            if matches!(c, '.' | '[' | ']' | '\\') {
                path.push('\\');
            }
            path.push(c);
        }
    } else {
        path.push_str(key);
    }
}

/// Appends the items segment.
pub(crate) fn push_items(path: &mut String) {
    path.push_str("[]");
}

/// The segments of a path written by [`push_key`] and [`push_items`].
pub fn segments(path: &str) -> Vec<Segment> {
    let mut out = Vec::new();
    let mut key = String::new();
    // A path starts with a key (the root is an object), possibly empty.
    let mut in_key = true;
    let mut chars = path.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                if let Some(n) = chars.next() {
                    key.push(n);
                }
            }
            '.' => {
                if in_key {
                    out.push(Segment::Key(std::mem::take(&mut key)));
                }
                in_key = true;
            }
            '[' if chars.peek() == Some(&']') => {
                chars.next();
                if in_key {
                    out.push(Segment::Key(std::mem::take(&mut key)));
                    in_key = false;
                }
                out.push(Segment::Items);
            }
            c => key.push(c),
        }
    }
    if in_key {
        out.push(Segment::Key(key));
    }
    out
}

/// The number of segments (nesting depth) of a path.
pub fn depth(path: &str) -> usize {
    segments(path).len()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn build(segs: &[Segment]) -> String {
        let mut p = String::new();
        for (i, s) in segs.iter().enumerate() {
            match s {
                Segment::Key(k) => push_key(&mut p, k, i == 0),
                Segment::Items => push_items(&mut p),
            }
        }
        p
    }

    #[test]
    fn paths_read_as_written() {
        let k = |s: &str| Segment::Key(s.into());
        let cases = [
            (vec![k("context"), k("os")], "context.os"),
            (vec![k("items"), Segment::Items, k("id")], "items[].id"),
            (vec![k("m"), Segment::Items, Segment::Items], "m[][]"),
            (vec![k("a.b"), k("c[]"), k("d\\")], "a\\.b.c\\[\\].d\\\\"),
            (vec![k(""), k("x"), k("")], ".x."),
            (vec![k("")], ""),
        ];
        for (segs, text) in cases {
            assert_eq!(build(&segs), text);
            assert_eq!(segments(text), segs, "{text}");
        }
        assert_eq!(depth("items[].id"), 3);
    }
}
