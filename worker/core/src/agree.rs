//! Column agreement: entityId, videoId and the title encoded in imageId must name the same
//! title. Where one column is missing or disagrees and the right value is derivable from the
//! others, it is corrected in place; otherwise the disagreement is flagged.

use crate::quality::{Correction, Pair};

/// What the event said about its title, after type checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TitleClaims {
    /// videoId, if present and an integer.
    pub video: Option<i64>,
    /// The id in entityId (`title:<id>` or `<id>`), if present and well-formed.
    pub entity: Option<i64>,
    /// The id in imageId (`img-<id>-<n>`), if present and well-formed.
    pub image: Option<i64>,
}

/// The resolved title and how it was reached.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Agreement {
    pub video_id: i64,
    /// entityId must be rewritten as `title:<video_id>`.
    pub rewrite_entity: bool,
    pub corrections: Vec<Correction>,
    /// Pairs that disagreed: (pair, corrected).
    pub mismatches: Vec<(Pair, bool)>,
}

/// Resolves the title the event is about, or `None` when no column names one.
pub fn resolve(c: TitleClaims) -> Option<Agreement> {
    let mut a = Agreement::default();
    a.video_id = match (c.video, c.entity) {
        (Some(v), Some(e)) if v == e => v,
        (Some(v), Some(e)) => {
            // The artwork breaks the tie: it was rendered for one of the two titles.
            if c.image == Some(v) {
                a.rewrite_entity = true;
                a.corrections.push(Correction::EntityFromVideo);
                a.mismatches.push((Pair::EntityVideo, true));
                v
            } else if c.image == Some(e) {
                a.corrections.push(Correction::VideoFromEntity);
                a.mismatches.push((Pair::EntityVideo, true));
                e
            } else {
                a.mismatches.push((Pair::EntityVideo, false));
                v
            }
        }
        (Some(v), None) => {
            a.rewrite_entity = true;
            a.corrections.push(Correction::EntityFromVideo);
            v
        }
        (None, Some(e)) => {
            a.corrections.push(Correction::VideoFromEntity);
            e
        }
        (None, None) => {
            let i = c.image?;
            a.rewrite_entity = true;
            a.corrections.push(Correction::VideoFromImage);
            a.corrections.push(Correction::EntityFromVideo);
            i
        }
    };
    if let Some(i) = c.image
        && i != a.video_id
    {
        a.mismatches.push((Pair::ImageVideo, false));
    }
    Some(a)
}

/// The id in an entityId: `title:<id>` or a bare `<id>`.
pub fn entity_id(s: &str) -> Option<i64> {
    let digits = s.strip_prefix("title:").unwrap_or(s);
    positive_id(digits)
}

/// The title id in an imageId of the form `img-<id>-<variant>`.
pub fn image_title(s: &str) -> Option<i64> {
    let rest = s.strip_prefix("img-")?;
    let (id, _variant) = rest.split_once('-')?;
    positive_id(id)
}

fn positive_id(s: &str) -> Option<i64> {
    if s.is_empty() || s.len() > 18 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok().filter(|&n| n > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(video: Option<i64>, entity: Option<i64>, image: Option<i64>) -> TitleClaims {
        TitleClaims {
            video,
            entity,
            image,
        }
    }

    #[test]
    fn agreeing_columns_need_nothing() {
        let a = resolve(claims(Some(5), Some(5), Some(5))).unwrap();
        assert_eq!(
            a,
            Agreement {
                video_id: 5,
                ..Default::default()
            }
        );
    }

    #[test]
    fn missing_video_is_taken_from_entity() {
        let a = resolve(claims(None, Some(5), None)).unwrap();
        assert_eq!(
            (a.video_id, a.corrections),
            (5, vec![Correction::VideoFromEntity])
        );
    }

    #[test]
    fn missing_entity_is_rebuilt_from_video() {
        let a = resolve(claims(Some(5), None, None)).unwrap();
        assert!(a.rewrite_entity);
        assert_eq!(a.corrections, vec![Correction::EntityFromVideo]);
    }

    #[test]
    fn disagreement_is_corrected_by_the_artwork() {
        let a = resolve(claims(Some(5), Some(6), Some(6))).unwrap();
        assert_eq!(a.video_id, 6);
        assert_eq!(a.corrections, vec![Correction::VideoFromEntity]);
        assert_eq!(a.mismatches, vec![(Pair::EntityVideo, true)]);

        let a = resolve(claims(Some(5), Some(6), Some(5))).unwrap();
        assert_eq!((a.video_id, a.rewrite_entity), (5, true));
        assert_eq!(a.corrections, vec![Correction::EntityFromVideo]);
    }

    #[test]
    fn undecidable_disagreement_is_flagged_not_corrected() {
        let a = resolve(claims(Some(5), Some(6), None)).unwrap();
        assert_eq!(a.video_id, 5);
        assert!(a.corrections.is_empty() && !a.rewrite_entity);
        assert_eq!(a.mismatches, vec![(Pair::EntityVideo, false)]);
    }

    #[test]
    fn artwork_of_another_title_is_flagged() {
        let a = resolve(claims(Some(5), Some(5), Some(7))).unwrap();
        assert_eq!(a.mismatches, vec![(Pair::ImageVideo, false)]);
    }

    #[test]
    fn only_the_artwork_names_the_title() {
        let a = resolve(claims(None, None, Some(7))).unwrap();
        assert_eq!(a.video_id, 7);
        assert_eq!(
            a.corrections,
            vec![Correction::VideoFromImage, Correction::EntityFromVideo]
        );
        assert!(resolve(claims(None, None, None)).is_none());
    }

    #[test]
    fn id_formats() {
        assert_eq!(entity_id("title:80100172"), Some(80100172));
        assert_eq!(entity_id("80100172"), Some(80100172));
        assert_eq!(entity_id("title:"), None);
        assert_eq!(entity_id("title:-3"), None);
        assert_eq!(image_title("img-42-7"), Some(42));
        assert_eq!(image_title("img-42"), None);
        assert_eq!(image_title("art-42-1"), None);
    }
}
