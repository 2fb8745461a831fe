//! The few certificate fields Rouge reads itself, with a minimal DER walk: the validity
//! period (for expiry warnings and for tests that set the clock inside it) and the
//! subject as text (the verified client's identity for later layers). Everything else
//! about certificates (chains, names, signatures) is webpki's job.

/// One DER element: its tag and its contents; the rest of the input after it.
fn element(der: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = der.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (first as usize, rest)
    } else {
        let n = (first & 0x7f) as usize;
        if n == 0 || n > 4 || rest.len() < n {
            return None;
        }
        let len = rest[..n].iter().fold(0usize, |a, &b| (a << 8) | b as usize);
        (len, &rest[n..])
    };
    if rest.len() < len {
        return None;
    }
    Some((tag, &rest[..len], &rest[len..]))
}

/// The elements of `tbsCertificate`, in order.
fn tbs(cert: &[u8]) -> Option<&[u8]> {
    let (tag, cert, _) = element(cert)?;
    if tag != 0x30 {
        return None;
    }
    let (tag, tbs, _) = element(cert)?;
    (tag == 0x30).then_some(tbs)
}

/// Skips the optional `[0] version`, `serialNumber` and `signature` of a TBS.
fn after_signature(tbs: &[u8]) -> Option<&[u8]> {
    let (tag, _, mut rest) = element(tbs)?;
    if tag == 0xa0 {
        rest = element(rest)?.2; // serial number
    }
    Some(element(rest)?.2) // signature algorithm
}

/// Seconds since the UNIX epoch of a UTCTime (`YYMMDDHHMMSSZ`) or GeneralizedTime
/// (`YYYYMMDDHHMMSSZ`).
fn time(tag: u8, s: &[u8]) -> Option<u64> {
    let digits = |b: &[u8]| -> Option<u64> {
        b.iter().try_fold(0u64, |a, &c| {
            c.is_ascii_digit().then(|| a * 10 + u64::from(c - b'0'))
        })
    };
    let (year, rest) = match tag {
        0x17 if s.len() == 13 => {
            let y = digits(&s[..2])?;
            (if y >= 50 { 1900 + y } else { 2000 + y }, &s[2..])
        }
        0x18 if s.len() == 15 => (digits(&s[..4])?, &s[4..]),
        _ => return None,
    };
    if rest[10] != b'Z' {
        return None;
    }
    let (month, day) = (digits(&rest[0..2])?, digits(&rest[2..4])?);
    let (h, m, sec) = (
        digits(&rest[4..6])?,
        digits(&rest[6..8])?,
        digits(&rest[8..10])?,
    );
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || year < 1970 {
        return None;
    }
    // Days from the civil date (Howard Hinnant's algorithm).
    let (y, mo) = if month <= 2 {
        (year - 1, month + 9)
    } else {
        (year, month - 3)
    };
    let era = y / 400;
    let yoe = y - era * 400;
    let doy = (153 * mo + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(days * 86_400 + h * 3600 + m * 60 + sec)
}

/// The validity period of a DER certificate: (notBefore, notAfter) in seconds since the
/// UNIX epoch, or `None` when it cannot be read.
pub fn validity(cert: &[u8]) -> Option<(u64, u64)> {
    let rest = after_signature(tbs(cert)?)?;
    let rest = element(rest)?.2; // issuer
    let (tag, validity, _) = element(rest)?;
    if tag != 0x30 {
        return None;
    }
    let (t1, nb, rest) = element(validity)?;
    let (t2, na, _) = element(rest)?;
    Some((time(t1, nb)?, time(t2, na)?))
}

/// The subject of a DER certificate as text, `O=...,CN=...` (the attributes Rouge
/// names; others are skipped), or `None` when it cannot be read.
pub fn subject(cert: &[u8]) -> Option<String> {
    let rest = after_signature(tbs(cert)?)?;
    let rest = element(rest)?.2; // issuer
    let rest = element(rest)?.2; // validity
    let (tag, mut name, _) = element(rest)?;
    if tag != 0x30 {
        return None;
    }
    let mut out = String::new();
    while !name.is_empty() {
        let (_, mut set, rest) = element(name)?;
        name = rest;
        while !set.is_empty() {
            let (_, atv, rest) = element(set)?;
            set = rest;
            let (_, oid, value) = element(atv)?;
            let (_, value, _) = element(value)?;
            let key = match oid {
                [0x55, 0x04, 0x03] => "CN",
                [0x55, 0x04, 0x0a] => "O",
                [0x55, 0x04, 0x0b] => "OU",
                [0x55, 0x04, 0x06] => "C",
                [0x55, 0x04, 0x07] => "L",
                [0x55, 0x04, 0x08] => "ST",
                _ => continue,
            };
            if !out.is_empty() {
                out.push(',');
            }
            out.push_str(key);
            out.push('=');
            out.push_str(&String::from_utf8_lossy(value));
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_convert_to_unix_seconds() {
        assert_eq!(time(0x17, b"700101000000Z"), Some(0));
        assert_eq!(time(0x17, b"261206184902Z"), Some(1_796_582_942));
        assert_eq!(time(0x18, b"20361203184902Z"), Some(2_111_942_942));
        assert_eq!(time(0x17, b"261306184902Z"), None, "month 13");
        assert_eq!(time(0x17, b"2612061849020"), None, "no Z");
    }

    #[test]
    fn garbage_is_refused_without_panicking() {
        for junk in [
            &b""[..],
            b"\x30",
            b"\x30\x84\xff\xff\xff\xff",
            b"\x30\x03\x30\x01",
        ] {
            assert_eq!(validity(junk), None);
            assert_eq!(subject(junk), None);
        }
    }
}
