//! `Phone`: digits with country code (E.164 without `+`), the only form Arauto stores.
//!
//! One normalisation for contacts, webhooks and audience dedup: a Brazilian mobile is
//! always stored in its 9-digit form (`55` + DDD + `9` + 8 digits). Its legacy 8-digit
//! notation (first digit 6–9 after the area code), which many WhatsApp accounts still
//! report in their jids, is the same line and gains its `9`; landlines (first digit 2–5)
//! keep 8 digits.

use std::fmt;

/// A normalised phone number: 8–15 digits, starting with the country calling code.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Phone(String);

/// Calling codes of the countries a tenant may choose as its default (ISO 3166 alpha-2).
const CALLING_CODES: &[(&str, &str)] = &[
    ("BR", "55"),
    ("AR", "54"),
    ("CL", "56"),
    ("CO", "57"),
    ("MX", "52"),
    ("PE", "51"),
    ("PY", "595"),
    ("UY", "598"),
    ("BO", "591"),
    ("US", "1"),
    ("CA", "1"),
    ("PT", "351"),
    ("ES", "34"),
    ("GB", "44"),
    ("FR", "33"),
    ("DE", "49"),
    ("IT", "39"),
    ("AO", "244"),
    ("MZ", "258"),
];

/// The calling code of a supported default country.
pub fn calling_code(country: &str) -> Option<&'static str> {
    CALLING_CODES
        .iter()
        .find(|(c, _)| c.eq_ignore_ascii_case(country))
        .map(|(_, code)| *code)
}

impl Phone {
    /// Normalises what people type: `(11) 98765-4321`, `+55 11 98765-4321`,
    /// `011987654321`, `0055 11 …`, `0 15 11 98765-4321` (carrier code) all become
    /// `5511987654321` when the default country is BR. A leading `+` or `00` means the
    /// number already carries its country code.
    pub fn parse(raw: &str, default_country: &str) -> Result<Self, &'static str> {
        let raw = raw.trim();
        if raw.is_empty() {
            return Err("must not be empty");
        }
        if !raw.chars().all(|c| c.is_ascii_digit() || " +-().\u{a0}/".contains(c)) {
            return Err("must contain only digits, spaces, +, -, ( and )");
        }
        if raw.chars().skip(1).any(|c| c == '+') {
            return Err("may only start with +");
        }
        let digits: String = raw.chars().filter(char::is_ascii_digit).collect();
        let international = if raw.starts_with('+') {
            Some(digits.as_str())
        } else {
            digits.strip_prefix("00")
        };
        let full = match international {
            Some(number) => number.to_owned(),
            None => national_to_full(&digits, default_country)?,
        };
        Self::from_full(full)
    }

    /// A number that already carries its country code, as gateways report it (the user
    /// part of a jid such as `553188887777@s.whatsapp.net`): digits only, canonicalised
    /// like [`Phone::parse`] (`553188887777` → `5531988887777`).
    pub fn from_international(digits: &str) -> Result<Self, &'static str> {
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err("must contain only digits");
        }
        Self::from_full(digits.to_owned())
    }

    fn from_full(full: String) -> Result<Self, &'static str> {
        let full = canonical(full);
        validate(&full)?;
        Ok(Self(full))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_string(self) -> String {
        self.0
    }
}

impl fmt::Display for Phone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

fn national_to_full(digits: &str, country: &str) -> Result<String, &'static str> {
    let code = calling_code(country).ok_or("the default country is not supported")?;
    if code == "55" {
        return brazilian(digits);
    }
    let national = digits.trim_start_matches('0');
    if national.starts_with(code) && national.len() > code.len() + 7 {
        Ok(national.to_owned())
    } else {
        Ok(format!("{code}{national}"))
    }
}

/// Brazil: `DDD + number` (10 or 11 digits), with an optional trunk `0` and carrier code,
/// or already prefixed with 55.
fn brazilian(digits: &str) -> Result<String, &'static str> {
    let without_trunk = digits.strip_prefix('0');
    let national = match without_trunk {
        // 0 + carrier (2 digits) + DDD + number
        Some(rest) if rest.len() == 12 || rest.len() == 13 => &rest[2..],
        Some(rest) => rest,
        None if (digits.len() == 12 || digits.len() == 13) && digits.starts_with("55") => &digits[2..],
        None => digits,
    };
    if national.len() == 10 || national.len() == 11 {
        Ok(format!("55{national}"))
    } else {
        Err("is not a valid Brazilian number: expected area code and 8 or 9 digits")
    }
}

/// A Brazilian mobile written with 8 digits (`55` + DDD + a number starting 6–9) gains
/// its ninth digit; every other number is returned as it is.
pub(crate) fn canonical(full: String) -> String {
    match full.strip_prefix("55") {
        Some(national)
            if national.len() == 10
                && national.bytes().all(|b| b.is_ascii_digit())
                && matches!(national.as_bytes()[2], b'6'..=b'9') =>
        {
            format!("55{}9{}", &national[..2], &national[2..])
        }
        _ => full,
    }
}

/// Brazil's 67 area codes (DDD) in use: ANATEL's national codes (Plano Geral de Códigos
/// Nacionais). Numbers such as 20, 23, 25 or 30 belong to no area and reach no one.
const BRAZILIAN_AREA_CODES: [u8; 67] = [
    11, 12, 13, 14, 15, 16, 17, 18, 19, 21, 22, 24, 27, 28, 31, 32, 33, 34, 35, 37, 38, 41, 42, 43, 44, 45, 46, 47, 48,
    49, 51, 53, 54, 55, 61, 62, 63, 64, 65, 66, 67, 68, 69, 71, 73, 74, 75, 77, 79, 81, 82, 83, 84, 85, 86, 87, 88, 89,
    91, 92, 93, 94, 95, 96, 97, 98, 99,
];

fn validate(full: &str) -> Result<(), &'static str> {
    if !(8..=15).contains(&full.len()) {
        return Err("must have between 8 and 15 digits including the country code");
    }
    if full.starts_with('0') {
        return Err("must start with a country code");
    }
    if let Some(national) = full.strip_prefix("55") {
        let len_ok = national.len() == 10 || national.len() == 11;
        let mobile_ok = national.len() != 11 || national.as_bytes()[2] == b'9';
        if !(len_ok && mobile_ok) {
            return Err("is not a valid Brazilian number");
        }
        let in_use = national[..2]
            .parse::<u8>()
            .is_ok_and(|ddd| BRAZILIAN_AREA_CODES.contains(&ddd));
        if !in_use {
            return Err("is not a valid Brazilian number: no such area code (DDD)");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn brazilian_numbers_in_every_common_form_normalise_alike() {
        for raw in [
            "(11) 98765-4321",
            "+55 11 98765-4321",
            "011987654321",
            "11987654321",
            "5511987654321",
            "0055 11 98765 4321",
            "0 15 11 98765-4321",
            " +55 (11) 9 8765-4321 ",
        ] {
            assert_eq!(Phone::parse(raw, "BR").unwrap().as_str(), "5511987654321", "{raw}");
        }
    }

    #[test]
    fn only_brazilian_area_codes_in_use_are_taken() {
        let taken: Vec<u8> = (11..=99)
            .filter(|ddd| Phone::parse(&format!("({ddd}) 98765-4321"), "BR").is_ok())
            .collect();
        assert_eq!(taken, BRAZILIAN_AREA_CODES);
        for ddd in [
            20, 23, 25, 26, 29, 30, 36, 39, 40, 50, 52, 56, 57, 58, 59, 60, 70, 72, 76, 78, 80, 90,
        ] {
            let e = Phone::parse(&format!("+55 {ddd} 98765-4321"), "BR").unwrap_err();
            assert!(e.contains("area code"), "{ddd}: {e}");
        }
    }

    #[test]
    fn brazilian_landlines_keep_eight_digits() {
        assert_eq!(Phone::parse("(21) 3456-7890", "BR").unwrap().as_str(), "552134567890");
        for first in ['2', '3', '4', '5'] {
            let raw = format!("(11) {first}765-4321");
            assert_eq!(
                Phone::parse(&raw, "BR").unwrap().as_str(),
                format!("5511{first}7654321")
            );
        }
    }

    #[test]
    fn a_brazilian_mobile_in_its_legacy_eight_digit_notation_gains_its_ninth_digit() {
        for raw in [
            "(11) 8765-4321",
            "+55 11 8765-4321",
            "551187654321",
            "01187654321",
            "0 15 11 8765-4321",
        ] {
            assert_eq!(Phone::parse(raw, "BR").unwrap().as_str(), "5511987654321", "{raw}");
        }
        for first in ['6', '7', '8', '9'] {
            let raw = format!("+55 31 {first}888-7777");
            assert_eq!(
                Phone::parse(&raw, "BR").unwrap().as_str(),
                format!("55319{first}8887777")
            );
        }
        // A Brazilian number typed under another default country, with its `+55`.
        assert_eq!(
            Phone::parse("+55 31 8888-7777", "PT").unwrap().as_str(),
            "5531988887777"
        );
    }

    #[test]
    fn a_gateways_number_is_canonicalised_like_a_typed_one() {
        assert_eq!(
            Phone::from_international("553188887777").unwrap().as_str(),
            "5531988887777"
        );
        assert_eq!(
            Phone::from_international("5531988887777").unwrap().as_str(),
            "5531988887777"
        );
        assert_eq!(
            Phone::from_international("553133334444").unwrap().as_str(),
            "553133334444"
        );
        assert_eq!(
            Phone::from_international("351912345678").unwrap().as_str(),
            "351912345678"
        );
        assert!(Phone::from_international("").is_err());
        assert!(Phone::from_international("55x").is_err());
    }

    #[test]
    fn canonicalisation_is_idempotent_and_never_touches_other_countries() {
        for full in [
            "5511987654321",
            "551187654321",
            "552134567890",
            "14155550100",
            "351912345678",
            "5411987654",
        ] {
            let once = canonical(full.to_owned());
            assert_eq!(canonical(once.clone()), once, "{full}");
            if !full.starts_with("55") {
                assert_eq!(once, full);
            }
        }
    }

    #[test]
    fn an_international_number_keeps_its_country() {
        assert_eq!(Phone::parse("+351 912 345 678", "BR").unwrap().as_str(), "351912345678");
        assert_eq!(Phone::parse("+1 (415) 555-0100", "BR").unwrap().as_str(), "14155550100");
    }

    #[test]
    fn the_default_country_applies_to_national_numbers() {
        assert_eq!(Phone::parse("912 345 678", "PT").unwrap().as_str(), "351912345678");
        assert_eq!(Phone::parse("(415) 555-0100", "US").unwrap().as_str(), "14155550100");
    }

    #[test]
    fn numbers_that_cannot_be_normalised_are_refused() {
        for raw in [
            "",
            "abc",
            "12345",
            "+55 11 8765-43210000",
            "98765-4321",
            "(10) 98765-4321",
            "11 88765-4321x",
            "55+11",
        ] {
            assert!(Phone::parse(raw, "BR").is_err(), "{raw}");
        }
    }
}
