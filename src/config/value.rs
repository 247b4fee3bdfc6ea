//! Attribute value grammars: sizes, booleans, integers, core lists and `${...}`
//! placeholders. Each parser returns `Err(expected)` with a phrase that completes
//! "expected ..." in the error message, so messages stay uniform.

/// Parses a size the way ActiveMQ's XBean property editor does: an integer with an
/// optional binary unit, spaces allowed, case-insensitive: `1024`, `512kb`, `64 mb`,
/// `1 GB`. Fractions are refused (ActiveMQ refuses them too).
pub(crate) fn parse_size(s: &str) -> Result<u64, &'static str> {
    const EXPECTED: &str = "a size like \"64 mb\"";
    let s = s.trim();
    let digits_end = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    if digits_end == 0 {
        return Err(EXPECTED);
    }
    let n: u64 = s[..digits_end].parse().map_err(|_| EXPECTED)?;
    let unit = s[digits_end..].trim().to_ascii_lowercase();
    let shift = match unit.as_str() {
        "" | "b" => 0,
        "k" | "kb" | "kib" => 10,
        "m" | "mb" | "mib" => 20,
        "g" | "gb" | "gib" => 30,
        "t" | "tb" | "tib" => 40,
        _ => return Err(EXPECTED),
    };
    n.checked_mul(1u64 << shift).ok_or("a size below 16 EiB")
}

/// Booleans as Spring's property editor accepts them.
pub(crate) fn parse_bool(s: &str) -> Result<bool, &'static str> {
    match s.trim().to_ascii_lowercase().as_str() {
        "true" | "yes" | "on" | "1" => Ok(true),
        "false" | "no" | "off" | "0" => Ok(false),
        _ => Err("true or false"),
    }
}

/// A non-negative integer (milliseconds, counts).
pub(crate) fn parse_u64(s: &str) -> Result<u64, &'static str> {
    let s = s.trim();
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err("a whole number >= 0");
    }
    s.parse().map_err(|_| "a whole number that fits in 64 bits")
}

/// A core list: `0,1,2`, ranges allowed (`0-3,8`), as `taskset` writes them.
pub(crate) fn parse_cpu_list(s: &str) -> Result<Vec<usize>, &'static str> {
    const EXPECTED: &str = "a CPU list like \"0,1\" or \"0-3\"";
    let mut out = Vec::new();
    for part in s.split(',') {
        let part = part.trim();
        if part.is_empty() {
            return Err(EXPECTED);
        }
        let (lo, hi) = match part.split_once('-') {
            Some((a, b)) => (a.trim(), b.trim()),
            None => (part, part),
        };
        let lo: usize = lo.parse().map_err(|_| EXPECTED)?;
        let hi: usize = hi.parse().map_err(|_| EXPECTED)?;
        // Bounded so a typo like "0-4294967295" cannot allocate the machine away.
        if lo > hi || hi >= 4096 {
            return Err(EXPECTED);
        }
        for cpu in lo..=hi {
            if out.contains(&cpu) {
                return Err("a CPU list without repeats");
            }
            out.push(cpu);
        }
    }
    Ok(out)
}

/// Names ActiveMQ's start script always defines; a stock `activemq.xml` uses them, so
/// without a fallback it could not start outside that script. Values follow the script
/// with the current directory as `ACTIVEMQ_BASE`.
const BUILTIN: &[(&str, &str)] = &[
    ("activemq.base", "."),
    ("activemq.home", "."),
    // The loader answers `activemq.conf` itself with the configuration file's
    // directory (see `Reader::value`), so this entry only serves `expand` on its own.
    ("activemq.conf", "conf"),
    ("activemq.data", "data"),
];

/// Why a placeholder could not be filled.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum PlaceholderError {
    Unset(String),
    Unterminated,
}

/// Fills `${name}` and `${name:-default}` from `lookup`.
///
/// A name is tried as written, then with dots as underscores, then that upper-cased
/// (`activemq.data`, `activemq_data`, `ACTIVEMQ_DATA`), then against [`BUILTIN`], then the
/// `:-default`. Anything else is an error naming the placeholder.
pub(crate) fn expand(
    s: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<String, PlaceholderError> {
    if !s.contains("${") {
        return Ok(s.to_string());
    }
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let Some(close) = after.find('}') else {
            return Err(PlaceholderError::Unterminated);
        };
        let inner = &after[..close];
        let (name, default) = match inner.split_once(":-") {
            Some((n, d)) => (n.trim(), Some(d)),
            None => (inner.trim(), None),
        };
        let underscored = name.replace('.', "_");
        let value = lookup(name)
            .or_else(|| lookup(&underscored))
            .or_else(|| lookup(&underscored.to_ascii_uppercase()))
            .or_else(|| {
                BUILTIN
                    .iter()
                    .find(|(k, _)| *k == name)
                    .map(|(_, v)| v.to_string())
            })
            .or_else(|| default.map(str::to_string))
            .ok_or_else(|| PlaceholderError::Unset(name.to_string()))?;
        out.push_str(&value);
        rest = &after[close + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("1024"), Ok(1024));
        assert_eq!(parse_size("64 mb"), Ok(64 << 20));
        assert_eq!(parse_size("64mb"), Ok(64 << 20));
        assert_eq!(parse_size("64 MB"), Ok(64 << 20));
        assert_eq!(parse_size("1 gb"), Ok(1 << 30));
        assert_eq!(parse_size("512kb"), Ok(512 << 10));
        assert_eq!(parse_size("512 KiB"), Ok(512 << 10));
        assert_eq!(parse_size("100 gb"), Ok(100 << 30));
        assert_eq!(parse_size(" 7 b "), Ok(7));
        assert_eq!(parse_size("2t"), Ok(2 << 40));
        for bad in [
            "lots",
            "",
            "mb",
            "1.5 gb",
            "-1",
            "64 xb",
            "64 m b",
            "99999999999 tb",
        ] {
            assert!(parse_size(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn bools_ints_cpus() {
        assert_eq!(parse_bool("TRUE"), Ok(true));
        assert_eq!(parse_bool("off"), Ok(false));
        assert!(parse_bool("maybe").is_err());
        assert_eq!(parse_u64("600000"), Ok(600_000));
        assert!(parse_u64("-5").is_err());
        assert!(parse_u64("10s").is_err());
        assert_eq!(parse_cpu_list("0,1"), Ok(vec![0, 1]));
        assert_eq!(parse_cpu_list("0-2, 5"), Ok(vec![0, 1, 2, 5]));
        for bad in ["", "a", "3-1", "0,0", "0,,1", "0-99999"] {
            assert!(parse_cpu_list(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn placeholders() {
        let env = |k: &str| match k {
            "dir" => Some("/srv".to_string()),
            "my_port" => Some("1234".to_string()),
            "TANDEM_HOME" => Some("/opt/t".to_string()),
            _ => None,
        };
        assert_eq!(expand("plain", &env), Ok("plain".into()));
        assert_eq!(expand("${dir}/x", &env), Ok("/srv/x".into()));
        assert_eq!(expand("${my.port}", &env), Ok("1234".into()));
        assert_eq!(expand("${tandem.home}", &env), Ok("/opt/t".into()));
        assert_eq!(
            expand("${activemq.data}/kahadb", &env),
            Ok("data/kahadb".into())
        );
        assert_eq!(expand("${nope:-5}${dir}", &env), Ok("5/srv".into()));
        assert_eq!(expand("${dir:-5}", &env), Ok("/srv".into()));
        assert_eq!(
            expand("${nope}", &env),
            Err(PlaceholderError::Unset("nope".into()))
        );
        assert_eq!(expand("${dir", &env), Err(PlaceholderError::Unterminated));
        // An environment value wins over the built-in ActiveMQ default.
        let env2 = |k: &str| (k == "ACTIVEMQ_DATA").then(|| "/var/amq".to_string());
        assert_eq!(expand("${activemq.data}", &env2), Ok("/var/amq".into()));
    }
}
