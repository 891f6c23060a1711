//! Database URLs as they may be printed: never with their password.

/// `url` with its password replaced by `***`, for logs and errors.
pub fn redact_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) if parsed.password().is_some() => {
            let _ = parsed.set_password(Some("***"));
            parsed.to_string()
        }
        _ => url.to_owned(),
    }
}

/// `message` about `url`, naming the redacted URL and never its password.
pub fn redact_password(url: &str, message: &str) -> String {
    let mut message = message.to_owned();
    if let Some(password) = url::Url::parse(url).ok().and_then(|u| u.password().map(str::to_owned)) {
        if !password.is_empty() {
            message = message.replace(&password, "***");
        }
    }
    format!("{}: {message}", redact_url(url))
}
