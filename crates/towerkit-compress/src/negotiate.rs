//! `Accept-Encoding` negotiation: which enabled coding a request gets.

use http::HeaderMap;
use http::header::ACCEPT_ENCODING;

use crate::encoding::Encoding;
use crate::levels::Levels;

/// Picks the coding for a response from the request's `Accept-Encoding` (RFC 9110 §12.5.3),
/// among the enabled ones: the highest weight wins, ties go to the order of [`Encoding::ALL`],
/// `*` stands for every coding not listed, and `identity` wins when the client weights it
/// above every enabled coding. `None` means send the response as it is: no header, an empty
/// header, nothing acceptable, or only unknown or malformed entries (those are ignored, as is
/// a client that excludes identity and accepts nothing enabled: RFC 9110 §12.1 lets the server
/// disregard the header rather than answer 406, which is what interoperates).
pub(crate) fn negotiate(headers: &HeaderMap, levels: &Levels) -> Option<(Encoding, i32)> {
    let mut explicit: [Option<u16>; 4] = [None; 4];
    let mut identity: Option<u16> = None;
    let mut wildcard: Option<u16> = None;

    for value in headers.get_all(ACCEPT_ENCODING) {
        let Ok(value) = value.to_str() else {
            continue;
        };
        for item in value.split(',') {
            let Some((coding, weight)) = parse_item(item) else {
                continue;
            };
            let slot = match coding {
                Coding::Known(encoding) => &mut explicit[encoding.index()],
                Coding::Identity => &mut identity,
                Coding::Any => &mut wildcard,
            };
            // A coding listed twice keeps its highest weight.
            *slot = Some(slot.map_or(weight, |old| old.max(weight)));
        }
    }

    let mut best: Option<(Encoding, i32, u16)> = None;
    for encoding in Encoding::ALL {
        let Some(level) = levels.get(encoding) else {
            continue;
        };
        let weight = explicit[encoding.index()].or(wildcard).unwrap_or(0);
        if weight > 0 && best.is_none_or(|(_, _, best_weight)| weight > best_weight) {
            best = Some((encoding, level, weight));
        }
    }
    let (encoding, level, weight) = best?;
    match identity.or(wildcard) {
        Some(identity_weight) if identity_weight > weight => None,
        _ => Some((encoding, level)),
    }
}

enum Coding {
    Known(Encoding),
    Identity,
    Any,
}

/// One `Accept-Encoding` list member: `coding [ OWS ";" OWS "q=" qvalue ]`. Unknown codings and
/// malformed weights give `None`, so the member is ignored.
fn parse_item(item: &str) -> Option<(Coding, u16)> {
    let mut parts = item.split(';');
    let name = parts.next()?.trim();
    let coding = if name.eq_ignore_ascii_case("gzip") || name.eq_ignore_ascii_case("x-gzip") {
        Coding::Known(Encoding::Gzip)
    } else if name.eq_ignore_ascii_case("br") {
        Coding::Known(Encoding::Br)
    } else if name.eq_ignore_ascii_case("zstd") {
        Coding::Known(Encoding::Zstd)
    } else if name.eq_ignore_ascii_case("deflate") {
        Coding::Known(Encoding::Deflate)
    } else if name.eq_ignore_ascii_case("identity") {
        Coding::Identity
    } else if name == "*" {
        Coding::Any
    } else {
        return None;
    };
    let weight = match parts.next() {
        None => 1000,
        Some(parameter) => parse_weight(parameter.trim())?,
    };
    if parts.next().is_some() {
        return None;
    }
    Some((coding, weight))
}

/// A weight `q=0`, `q=0.5`, `q=1.000` (RFC 9110 §12.4.2) in thousandths.
fn parse_weight(parameter: &str) -> Option<u16> {
    let value = parameter
        .strip_prefix("q=")
        .or_else(|| parameter.strip_prefix("Q="))?;
    let (integer, fraction) = value.split_once('.').unwrap_or((value, ""));
    if fraction.len() > 3 || !fraction.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let mut thousandths = 0u16;
    for (i, digit) in fraction.bytes().enumerate() {
        thousandths += u16::from(digit - b'0') * [100, 10, 1][i];
    }
    match integer {
        "0" => Some(thousandths),
        "1" if thousandths == 0 => Some(1000),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use http::HeaderValue;

    use super::*;

    fn check(accept: &[&str], expected: Option<Encoding>) {
        let mut headers = HeaderMap::new();
        for value in accept {
            headers.append(ACCEPT_ENCODING, HeaderValue::from_str(value).unwrap());
        }
        let chosen = negotiate(&headers, &Levels::new()).map(|(encoding, _)| encoding);
        assert_eq!(chosen, expected, "Accept-Encoding: {accept:?}");
    }

    #[test]
    fn no_header_means_identity() {
        check(&[], None);
        check(&[""], None);
    }

    #[test]
    fn browser_lists_pick_the_preferred_coding() {
        check(&["gzip, deflate, br, zstd"], Some(Encoding::Zstd));
        check(&["gzip, deflate, br"], Some(Encoding::Br));
        check(&["gzip, deflate"], Some(Encoding::Gzip));
        check(&["deflate"], Some(Encoding::Deflate));
        check(&["x-gzip"], Some(Encoding::Gzip));
        check(&["GZIP"], Some(Encoding::Gzip));
    }

    #[test]
    fn weights_beat_preference_order() {
        check(&["zstd;q=0.5, gzip"], Some(Encoding::Gzip));
        check(&["br;q=0.9, gzip;q=0.8"], Some(Encoding::Br));
        check(&["zstd ; q=0.1, br;Q=0.2"], Some(Encoding::Br));
        check(&["gzip;q=1.000, br;q=0.999"], Some(Encoding::Gzip));
    }

    #[test]
    fn zero_weight_excludes_a_coding() {
        check(&["zstd;q=0, br;q=0"], None);
        check(&["*, zstd;q=0"], Some(Encoding::Br));
    }

    #[test]
    fn wildcard_covers_unlisted_codings() {
        check(&["*"], Some(Encoding::Zstd));
        check(&["gzip;q=1, *;q=0.5"], Some(Encoding::Gzip));
        check(&["*;q=0"], None);
    }

    #[test]
    fn identity_weighted_higher_wins() {
        check(&["gzip;q=0.5, identity"], None);
        check(&["gzip, identity;q=0.5"], Some(Encoding::Gzip));
        check(&["gzip;q=0.5, identity;q=0.5"], Some(Encoding::Gzip));
        check(&["identity;q=0.9, *;q=0.5"], None);
        // The wildcard gives zstd 0.8, as much as identity: ties go to compression.
        check(&["*;q=0.8, gzip;q=0.5"], Some(Encoding::Zstd));
    }

    #[test]
    fn unsatisfiable_header_gets_identity_not_an_error() {
        check(&["identity;q=0"], None);
        check(&["compress, identity;q=0"], None);
    }

    #[test]
    fn malformed_members_are_ignored() {
        check(&["gzip;q=2, br"], Some(Encoding::Br));
        check(&["gzip;q=abc, deflate"], Some(Encoding::Deflate));
        check(&["gzip;q=0.1234"], None);
        check(&["gzip;level=1"], None);
        check(&[",,, gzip ,"], Some(Encoding::Gzip));
        check(&["br;q=1.5"], None);
        check(&["br;q=0.5;q=0.6"], None);
    }

    #[test]
    fn several_header_lines_are_one_list() {
        check(&["gzip;q=0.5", "br"], Some(Encoding::Br));
    }

    #[test]
    fn non_ascii_header_value_is_ignored() {
        let mut headers = HeaderMap::new();
        headers.insert(
            ACCEPT_ENCODING,
            HeaderValue::from_bytes(b"gzip\xff").unwrap(),
        );
        assert_eq!(negotiate(&headers, &Levels::new()), None);
    }

    #[test]
    fn disabled_codings_are_never_chosen() {
        let mut levels = Levels::new();
        levels.disable(Encoding::Zstd);
        let mut headers = HeaderMap::new();
        headers.insert(ACCEPT_ENCODING, HeaderValue::from_static("zstd, br"));
        assert_eq!(negotiate(&headers, &levels), Some((Encoding::Br, 4)));
        levels.disable(Encoding::Br);
        assert_eq!(negotiate(&headers, &levels), None);
    }

    #[test]
    fn chosen_coding_carries_its_configured_level() {
        let mut levels = Levels::new();
        levels.set(Encoding::Gzip, 1).unwrap();
        let mut headers = HeaderMap::new();
        headers.insert(ACCEPT_ENCODING, HeaderValue::from_static("gzip"));
        assert_eq!(negotiate(&headers, &levels), Some((Encoding::Gzip, 1)));
    }

    #[test]
    fn weight_parser_follows_the_grammar() {
        assert_eq!(parse_weight("q=0"), Some(0));
        assert_eq!(parse_weight("q=0."), Some(0));
        assert_eq!(parse_weight("q=0.5"), Some(500));
        assert_eq!(parse_weight("q=0.05"), Some(50));
        assert_eq!(parse_weight("q=0.001"), Some(1));
        assert_eq!(parse_weight("q=1"), Some(1000));
        assert_eq!(parse_weight("q=1.0"), Some(1000));
        assert_eq!(parse_weight("q=1.001"), None);
        assert_eq!(parse_weight("q=.5"), None);
        assert_eq!(parse_weight("q=-0"), None);
        assert_eq!(parse_weight("q=0.+1"), None);
        assert_eq!(parse_weight("q= 0.5"), None);
    }
}
