//! Reading CreateSession's answer: the session's credentials from the XML
//! document S3 Express sends.
//!
//! ```xml
//! <CreateSessionResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">
//!   <Credentials>
//!     <SessionToken>…</SessionToken>
//!     <SecretAccessKey>…</SecretAccessKey>
//!     <AccessKeyId>…</AccessKeyId>
//!     <Expiration>2026-11-24T12:00:00Z</Expiration>
//!   </Credentials>
//! </CreateSessionResult>
//! ```
//!
//! Element names are compared without their namespace prefix; other elements
//! are ignored. Each of the four values must appear once, as text (entity and
//! character references decoded, CDATA taken as is), and not be empty. A
//! document type declaration is refused. Errors name elements, never values.

use std::time::SystemTime;

use xmlparser::{ElementEnd, Token, Tokenizer};

use crate::sigv4::AmzDate;

/// The four values of `<Credentials>`, in the order [`SessionValues`] holds them.
const FIELDS: [&str; 4] = [
    "AccessKeyId",
    "SecretAccessKey",
    "SessionToken",
    "Expiration",
];

/// What a CreateSession answer holds. `Debug` shows only the access key id.
pub(crate) struct SessionValues {
    pub(crate) access_key_id: String,
    pub(crate) secret_access_key: String,
    pub(crate) session_token: String,
    pub(crate) expiration: SystemTime,
}

impl std::fmt::Debug for SessionValues {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionValues")
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &"<redacted>")
            .field("session_token", &"<redacted>")
            .field("expiration", &self.expiration)
            .finish()
    }
}

/// Why a CreateSession answer could not be read. Never holds a value from it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AnswerError {
    /// The body is not UTF-8.
    #[error("the body is not UTF-8")]
    NotUtf8,
    /// The body is not well-formed XML.
    #[error("malformed XML at line {line}, column {column}")]
    Malformed {
        /// Where, 1-based.
        line: u32,
        /// Where, 1-based.
        column: u32,
    },
    /// The document declares a document type.
    #[error("the document has a DOCTYPE")]
    Doctype,
    /// The root element is another one (or there is none).
    #[error("the root element is {0}, not <CreateSessionResult>")]
    WrongRoot(String),
    /// `<CreateSessionResult>` has no `<Credentials>`.
    #[error("<Credentials> is missing")]
    NoCredentials,
    /// An element that must appear once appears again.
    #[error("<{0}> appears more than once")]
    Repeated(&'static str),
    /// One of the four values is missing.
    #[error("<Credentials> has no <{0}>")]
    Missing(&'static str),
    /// One of the four values holds an element rather than text.
    #[error("<{0}> holds an element, not text")]
    NotText(&'static str),
    /// One of the four values is empty.
    #[error("<{0}> is empty")]
    Empty(&'static str),
    /// A reference in one of the four values is not one XML defines.
    #[error("<{0}> holds an unknown entity reference")]
    Entity(&'static str),
    /// `<Expiration>` is not an ISO 8601 UTC time.
    #[error("<Expiration> is not a time such as 2026-11-24T12:00:00Z")]
    Expiration,
    /// A value holds characters the header it travels in cannot carry.
    #[error("<{0}> holds characters a request header cannot carry")]
    Unsendable(&'static str),
    /// The answer is larger than any CreateSession answer.
    #[error("the answer is larger than 64 KiB")]
    TooLarge,
}

/// Reads the session's credentials from a CreateSession answer body.
pub(crate) fn parse(body: &[u8]) -> Result<SessionValues, AnswerError> {
    let text = std::str::from_utf8(body).map_err(|_| AnswerError::NotUtf8)?;
    // Open elements as (prefix, local name), to match their end tags.
    let mut open: Vec<(&str, &str)> = Vec::new();
    let mut root_seen = false;
    let mut credentials_seen = false;
    let mut values: [Option<String>; 4] = Default::default();
    // The value being read: its index in FIELDS, and its text so far.
    let mut reading: Option<(usize, String)> = None;
    for token in Tokenizer::from(text) {
        let token = token.map_err(|e| {
            let pos = e.pos();
            AnswerError::Malformed {
                line: pos.row,
                column: pos.col,
            }
        })?;
        match token {
            Token::DtdStart { .. }
            | Token::EmptyDtd { .. }
            | Token::EntityDeclaration { .. }
            | Token::DtdEnd { .. } => return Err(AnswerError::Doctype),
            Token::ElementStart { prefix, local, .. } => {
                let local = local.as_str();
                if let Some((field, _)) = &reading {
                    return Err(AnswerError::NotText(FIELDS[*field]));
                }
                match open.as_slice() {
                    [] if root_seen => return Err(AnswerError::WrongRoot(shown(local))),
                    [] if local != "CreateSessionResult" => {
                        return Err(AnswerError::WrongRoot(shown(local)))
                    }
                    [] => root_seen = true,
                    [_] if local == "Credentials" => {
                        if credentials_seen {
                            return Err(AnswerError::Repeated("Credentials"));
                        }
                        credentials_seen = true;
                    }
                    [_, (_, "Credentials")] => {
                        if let Some(field) = FIELDS.iter().position(|f| *f == local) {
                            if values[field].is_some() {
                                return Err(AnswerError::Repeated(FIELDS[field]));
                            }
                            reading = Some((field, String::new()));
                        }
                    }
                    _ => {}
                }
                open.push((prefix.as_str(), local));
            }
            Token::ElementEnd { end, .. } => {
                match end {
                    ElementEnd::Open => continue,
                    ElementEnd::Empty => {
                        open.pop();
                    }
                    ElementEnd::Close(prefix, local) => match open.pop() {
                        Some(name) if name == (prefix.as_str(), local.as_str()) => {}
                        _ => {
                            let pos = text_pos(text, local.start());
                            return Err(AnswerError::Malformed {
                                line: pos.0,
                                column: pos.1,
                            });
                        }
                    },
                }
                // The end of a value's element (`<X/>` or `</X>`).
                if open.len() == 2 {
                    if let Some((field, value)) = reading.take() {
                        values[field] = Some(value);
                    }
                }
            }
            Token::Text { text } => {
                if let Some((field, value)) = &mut reading {
                    decode_into(value, text.as_str()).ok_or(AnswerError::Entity(FIELDS[*field]))?;
                }
            }
            Token::Cdata { text, .. } => {
                if let Some((_, value)) = &mut reading {
                    value.push_str(text.as_str());
                }
            }
            Token::Declaration { .. }
            | Token::ProcessingInstruction { .. }
            | Token::Comment { .. }
            | Token::Attribute { .. } => {}
        }
    }
    if !root_seen {
        return Err(AnswerError::WrongRoot("missing".into()));
    }
    if !open.is_empty() {
        let pos = text_pos(text, text.len());
        return Err(AnswerError::Malformed {
            line: pos.0,
            column: pos.1,
        });
    }
    if !credentials_seen {
        return Err(AnswerError::NoCredentials);
    }
    let [access_key_id, secret_access_key, session_token, expiration] = values;
    let value = |v: Option<String>, field: usize| -> Result<String, AnswerError> {
        let v = v.ok_or(AnswerError::Missing(FIELDS[field]))?;
        let trimmed = v.trim();
        if trimmed.is_empty() {
            return Err(AnswerError::Empty(FIELDS[field]));
        }
        Ok(if trimmed.len() == v.len() {
            v
        } else {
            trimmed.to_owned()
        })
    };
    let access_key_id = value(access_key_id, 0)?;
    let secret_access_key = value(secret_access_key, 1)?;
    let session_token = value(session_token, 2)?;
    let expiration = parse_expiration(&value(expiration, 3)?).ok_or(AnswerError::Expiration)?;
    Ok(SessionValues {
        access_key_id,
        secret_access_key,
        session_token,
        expiration,
    })
}

/// An element name for a message: at most 64 characters, printable.
fn shown(name: &str) -> String {
    let mut out: String = name.chars().filter(|c| !c.is_control()).take(64).collect();
    out.insert(0, '<');
    out.push('>');
    out
}

/// The 1-based line and column of byte `at` of `text`.
fn text_pos(text: &str, at: usize) -> (u32, u32) {
    let before = &text[..at.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (
        u32::try_from(line).unwrap_or(u32::MAX),
        u32::try_from(column).unwrap_or(u32::MAX),
    )
}

/// Appends `raw` with its entity and character references decoded; `None`
/// when one is not a reference XML defines.
fn decode_into(out: &mut String, raw: &str) -> Option<()> {
    let mut rest = raw;
    while let Some(at) = rest.find('&') {
        out.push_str(&rest[..at]);
        let end = rest[at..].find(';')? + at;
        let name = &rest[at + 1..end];
        let decoded = match name {
            "amp" => '&',
            "lt" => '<',
            "gt" => '>',
            "quot" => '"',
            "apos" => '\'',
            _ => {
                let code = match name.strip_prefix("#x").or_else(|| name.strip_prefix("#X")) {
                    Some(hex) => u32::from_str_radix(hex, 16).ok()?,
                    None => name.strip_prefix('#')?.parse::<u32>().ok()?,
                };
                char::from_u32(code)?
            }
        };
        out.push(decoded);
        rest = &rest[end + 1..];
    }
    out.push_str(rest);
    Some(())
}

/// Parses `2026-11-24T12:00:00Z`, also with fractional seconds (dropped) or
/// a `+00:00` offset.
fn parse_expiration(value: &str) -> Option<SystemTime> {
    let utc = value
        .strip_suffix('Z')
        .or_else(|| value.strip_suffix("+00:00"))?;
    let whole = match utc.split_once('.') {
        Some((whole, fraction))
            if !fraction.is_empty() && fraction.bytes().all(|b| b.is_ascii_digit()) =>
        {
            whole
        }
        Some(_) => return None,
        None => utc,
    };
    let mut text = String::with_capacity(whole.len() + 1);
    text.push_str(whole);
    text.push('Z');
    AmzDate::parse(&text).ok().map(|t| t.to_system_time())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    const NS: &str = "http://s3.amazonaws.com/doc/2006-03-01/";

    fn answer(credentials: &str) -> String {
        format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n\
             <CreateSessionResult xmlns=\"{NS}\"><Credentials>{credentials}</Credentials></CreateSessionResult>"
        )
    }

    const GOOD: &str = "<SessionToken>TOKEN-1</SessionToken>\
                        <SecretAccessKey>secret/KEY+1</SecretAccessKey>\
                        <AccessKeyId>ASIASESSION1</AccessKeyId>\
                        <Expiration>2026-11-24T12:00:00Z</Expiration>";

    /// 2026-11-24T12:00:00Z.
    fn noon() -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(1_795_521_600)
    }

    #[test]
    fn reads_the_four_values_in_any_order() {
        let v = parse(answer(GOOD).as_bytes()).unwrap();
        assert_eq!(v.access_key_id, "ASIASESSION1");
        assert_eq!(v.secret_access_key, "secret/KEY+1");
        assert_eq!(v.session_token, "TOKEN-1");
        assert_eq!(v.expiration, noon());
    }

    #[test]
    fn reads_pretty_printed_prefixed_answers_with_other_elements_and_comments() {
        let body = format!(
            "<s3:CreateSessionResult xmlns:s3=\"{NS}\">\n\
             <!-- a comment -->\n\
             <s3:ServerSideEncryption>AES256</s3:ServerSideEncryption>\n\
             <s3:Credentials>\n\
               <s3:AccessKeyId>\n  ASIASESSION1\n</s3:AccessKeyId>\n\
               <s3:SecretAccessKey>secret</s3:SecretAccessKey>\n\
               <s3:Unknown><s3:Nested/></s3:Unknown>\n\
               <s3:SessionToken><![CDATA[TOKEN<&>]]></s3:SessionToken>\n\
               <s3:Expiration>2026-11-24T12:00:00.000Z</s3:Expiration>\n\
             </s3:Credentials>\n\
             </s3:CreateSessionResult>\n"
        );
        let v = parse(body.as_bytes()).unwrap();
        assert_eq!(v.access_key_id, "ASIASESSION1");
        assert_eq!(v.session_token, "TOKEN<&>");
        assert_eq!(v.expiration, noon());
    }

    #[test]
    fn decodes_entity_and_character_references() {
        let body = answer(
            "<SessionToken>a&amp;b&lt;c&gt;d&quot;e&apos;f&#43;g&#x2F;h&#X2f;</SessionToken>\
             <SecretAccessKey>s&#x2B;t</SecretAccessKey>\
             <AccessKeyId>ASIA1</AccessKeyId>\
             <Expiration>2026-11-24T12:00:00+00:00</Expiration>",
        );
        let v = parse(body.as_bytes()).unwrap();
        assert_eq!(v.session_token, "a&b<c>d\"e'f+g/h/");
        assert_eq!(v.secret_access_key, "s+t");
        assert_eq!(v.expiration, noon());
        for bad in ["a&foo;b", "a&#xZZ;b", "a&#1114112;b", "a&amp"] {
            let body = answer(&GOOD.replace("TOKEN-1", bad));
            assert_eq!(
                parse(body.as_bytes()).unwrap_err(),
                AnswerError::Entity("SessionToken"),
                "{bad}"
            );
        }
    }

    #[test]
    fn names_a_missing_or_empty_value() {
        for (field, element) in FIELDS.iter().zip([
            "<AccessKeyId>ASIASESSION1</AccessKeyId>",
            "<SecretAccessKey>secret/KEY+1</SecretAccessKey>",
            "<SessionToken>TOKEN-1</SessionToken>",
            "<Expiration>2026-11-24T12:00:00Z</Expiration>",
        ]) {
            let body = answer(&GOOD.replace(element, ""));
            assert_eq!(
                parse(body.as_bytes()).unwrap_err(),
                AnswerError::Missing(field),
                "{field}"
            );
            let empty = format!("<{field}> </{field}>");
            let body = answer(&GOOD.replace(element, &empty));
            assert_eq!(
                parse(body.as_bytes()).unwrap_err(),
                AnswerError::Empty(field),
                "{field}"
            );
            let self_closed = format!("<{field}/>");
            let body = answer(&GOOD.replace(element, &self_closed));
            assert_eq!(
                parse(body.as_bytes()).unwrap_err(),
                AnswerError::Empty(field),
                "{field}"
            );
        }
    }

    #[test]
    fn refuses_other_shapes() {
        let cases: Vec<(String, AnswerError)> = vec![
            (
                "<Error><Code>AccessDenied</Code><Message>no</Message></Error>".into(),
                AnswerError::WrongRoot("<Error>".into()),
            ),
            ("".into(), AnswerError::WrongRoot("missing".into())),
            (
                format!("<CreateSessionResult>{GOOD}</CreateSessionResult>"),
                AnswerError::NoCredentials,
            ),
            (
                format!(
                    "<CreateSessionResult><Other><Credentials>{GOOD}</Credentials></Other></CreateSessionResult>"
                ),
                AnswerError::NoCredentials,
            ),
            (
                format!(
                    "<CreateSessionResult><Credentials>{GOOD}</Credentials><Credentials>{GOOD}</Credentials></CreateSessionResult>"
                ),
                AnswerError::Repeated("Credentials"),
            ),
            (
                answer(&format!("{GOOD}<AccessKeyId>ASIA2</AccessKeyId>")),
                AnswerError::Repeated("AccessKeyId"),
            ),
            (
                answer(&GOOD.replace("TOKEN-1", "<b>TOKEN</b>")),
                AnswerError::NotText("SessionToken"),
            ),
            (
                answer(&GOOD.replace("2026-11-24T12:00:00Z", "tomorrow")),
                AnswerError::Expiration,
            ),
            (
                answer(&GOOD.replace("2026-11-24T12:00:00Z", "2026-11-24T12:00:00+02:00")),
                AnswerError::Expiration,
            ),
            (
                answer(&GOOD.replace("2026-11-24T12:00:00Z", "2026-11-24T12:00:00.Z")),
                AnswerError::Expiration,
            ),
            (
                format!(
                    "<!DOCTYPE x [<!ENTITY t \"x\">]><CreateSessionResult><Credentials>{GOOD}</Credentials></CreateSessionResult>"
                ),
                AnswerError::Doctype,
            ),
        ];
        for (body, want) in cases {
            assert_eq!(parse(body.as_bytes()).unwrap_err(), want, "{body}");
        }
    }

    #[test]
    fn refuses_malformed_and_truncated_documents() {
        let whole = answer(GOOD);
        for body in [
            whole[..whole.len() - 10].to_string(),
            whole.replace("</Credentials>", "</Credential>"),
            "<CreateSessionResult><Credentials>".to_string(),
            "not xml at all".to_string(),
        ] {
            assert!(
                matches!(
                    parse(body.as_bytes()),
                    Err(AnswerError::Malformed { .. } | AnswerError::WrongRoot(_))
                ),
                "{body}: {:?}",
                parse(body.as_bytes())
            );
        }
        assert_eq!(parse(b"\xff\xfe").unwrap_err(), AnswerError::NotUtf8);
    }

    #[test]
    fn errors_and_debug_output_hold_no_values() {
        let v = parse(answer(GOOD).as_bytes()).unwrap();
        let printed = format!("{v:?}");
        assert!(printed.contains("ASIASESSION1"), "{printed}");
        assert!(!printed.contains("secret/KEY+1") && !printed.contains("TOKEN-1"));
        let body = answer(&GOOD.replace("TOKEN-1", "TOKEN-1&bogus;"));
        let e = parse(body.as_bytes()).unwrap_err().to_string();
        assert!(!e.contains("TOKEN-1") && !e.contains("bogus"), "{e}");
    }
}
