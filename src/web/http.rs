//! HTTP plumbing around tiny_http: a parsed request (`Req`) with size-limited body, form
//! and cookies, and a response (`Resp`) that always carries the security headers.

use std::io::Read;
use std::net::IpAddr;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Get,
    Post,
    Other,
}

/// A request as the handlers see it.
#[derive(Debug)]
pub struct Req {
    pub method: Method,
    /// Path without the query string, percent-decoded per segment by the router.
    pub path: String,
    pub query: Vec<(String, String)>,
    pub form: Vec<(String, String)>,
    pub cookies: Vec<(String, String)>,
    pub remote: Option<IpAddr>,
    pub accept_language: Option<String>,
    pub origin: Option<String>,
    pub host: Option<String>,
    pub sec_fetch_site: Option<String>,
}

/// Why a request could not even be read.
#[derive(Debug, PartialEq, Eq)]
pub enum Rejected {
    TooLarge,
    BadBody,
}

impl Req {
    /// Reads a tiny_http request, its body capped at `max_body` bytes.
    /// `client` is the browser's address (tiny_http only sees the front's relay).
    pub fn read(
        rq: &mut tiny_http::Request,
        max_body: usize,
        client: Option<IpAddr>,
    ) -> Result<Req, Rejected> {
        let method = match rq.method() {
            tiny_http::Method::Get | tiny_http::Method::Head => Method::Get,
            tiny_http::Method::Post => Method::Post,
            _ => Method::Other,
        };
        let url = rq.url().to_string();
        let (path, query) = match url.split_once('?') {
            Some((p, q)) => (p.to_string(), parse_form(q.as_bytes())),
            None => (url, Vec::new()),
        };
        let header = |name: &'static str| {
            rq.headers()
                .iter()
                .find(|h| h.field.equiv(name))
                .map(|h| h.value.as_str().to_string())
        };
        let cookies = header("Cookie")
            .map(|c| parse_cookies(&c))
            .unwrap_or_default();
        let accept_language = header("Accept-Language");
        let origin = header("Origin");
        let host = header("Host");
        let sec_fetch_site = header("Sec-Fetch-Site");
        let content_type = header("Content-Type").unwrap_or_default();
        if rq.body_length().is_some_and(|n| n > max_body) {
            return Err(Rejected::TooLarge);
        }
        let mut form = Vec::new();
        if method == Method::Post {
            let mut body = Vec::new();
            let n = rq
                .as_reader()
                .take(max_body as u64 + 1)
                .read_to_end(&mut body)
                .map_err(|_| Rejected::BadBody)?;
            if n > max_body {
                return Err(Rejected::TooLarge);
            }
            if content_type.starts_with("application/x-www-form-urlencoded")
                || content_type.is_empty()
            {
                form = parse_form(&body);
            }
        }
        Ok(Req {
            method,
            path,
            query,
            form,
            cookies,
            remote: client,
            accept_language,
            origin,
            host,
            sec_fetch_site,
        })
    }

    pub fn cookie(&self, name: &str) -> Option<&str> {
        self.cookies
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// A form field, trimmed; missing fields read as "".
    pub fn field(&self, name: &str) -> &str {
        self.form
            .iter()
            .find(|(k, _)| k == name)
            .map_or("", |(_, v)| v.trim())
    }

    /// Every value of a repeated form field (checkbox lists).
    pub fn fields(&self, name: &str) -> Vec<&str> {
        self.form
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    pub fn param(&self, name: &str) -> &str {
        self.query
            .iter()
            .find(|(k, _)| k == name)
            .map_or("", |(_, v)| v.trim())
    }

    /// Path segments (`/members/3/edit` → `["members", "3", "edit"]`).
    pub fn segments(&self) -> Vec<&str> {
        self.path.split('/').filter(|s| !s.is_empty()).collect()
    }

    /// Is this a same-origin request? Browsers send `Sec-Fetch-Site` and `Origin` on
    /// POSTs; a cross-site form post is refused even before the CSRF token is checked.
    pub fn same_origin(&self) -> bool {
        if let Some(site) = &self.sec_fetch_site {
            if site != "same-origin" && site != "none" {
                return false;
            }
        }
        match (&self.origin, &self.host) {
            (Some(origin), Some(host)) => {
                let o = origin.split("://").nth(1).unwrap_or(origin);
                o == host
            }
            _ => true,
        }
    }
}

pub fn parse_form(bytes: &[u8]) -> Vec<(String, String)> {
    form_urlencoded::parse(bytes)
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

fn parse_cookies(header: &str) -> Vec<(String, String)> {
    header
        .split(';')
        .filter_map(|c| c.trim().split_once('='))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect()
}

/// Percent-encodes a query value.
pub fn encode(value: &str) -> String {
    form_urlencoded::byte_serialize(value.as_bytes()).collect()
}

/// The response of a handler.
pub struct Resp {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Body,
}

pub enum Body {
    Bytes(Vec<u8>),
    /// A never-ending stream (Server-Sent Events), answered on its own thread.
    Stream(Box<dyn Read + Send>),
}

/// No inline script or style, nothing from elsewhere: the panel works offline.
pub const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
    connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'; object-src 'none'";

/// Sent with every answer.
pub const SECURITY_HEADERS: &[(&str, &str)] = &[
    ("Content-Security-Policy", CSP),
    ("X-Content-Type-Options", "nosniff"),
    ("X-Frame-Options", "DENY"),
    ("Referrer-Policy", "same-origin"),
];

impl Resp {
    pub fn new(status: u16, content_type: &str, body: Vec<u8>) -> Resp {
        Resp {
            status,
            headers: vec![("Content-Type".into(), content_type.into())],
            body: Body::Bytes(body),
        }
    }

    pub fn html(markup: maud::Markup) -> Resp {
        Resp::new(
            200,
            "text/html; charset=utf-8",
            markup.into_string().into_bytes(),
        )
    }

    pub fn status(mut self, status: u16) -> Resp {
        self.status = status;
        self
    }

    pub fn text(status: u16, text: &str) -> Resp {
        Resp::new(
            status,
            "text/plain; charset=utf-8",
            text.as_bytes().to_vec(),
        )
    }

    /// 303 See Other: the answer to a successful form POST.
    pub fn redirect(to: &str) -> Resp {
        Resp::new(303, "text/plain; charset=utf-8", Vec::new()).header("Location", to)
    }

    pub fn header(mut self, name: &str, value: &str) -> Resp {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Converts to tiny_http with the headers every answer carries.
    pub fn into_tiny(self) -> tiny_http::Response<Box<dyn Read + Send>> {
        let (reader, len): (Box<dyn Read + Send>, Option<usize>) = match self.body {
            Body::Bytes(b) => {
                let n = b.len();
                (Box::new(std::io::Cursor::new(b)), Some(n))
            }
            Body::Stream(r) => (r, None),
        };
        let mut headers: Vec<tiny_http::Header> = self
            .headers
            .iter()
            .filter_map(|(k, v)| tiny_http::Header::from_bytes(k.as_bytes(), v.as_bytes()).ok())
            .collect();
        for (k, v) in SECURITY_HEADERS {
            headers.push(
                tiny_http::Header::from_bytes(k.as_bytes(), v.as_bytes()).expect("static header"),
            );
        }
        if !self
            .headers
            .iter()
            .any(|(k, _)| k.eq_ignore_ascii_case("Cache-Control"))
        {
            headers.push(
                tiny_http::Header::from_bytes(&b"Cache-Control"[..], &b"no-store"[..])
                    .expect("static header"),
            );
        }
        tiny_http::Response::new(
            tiny_http::StatusCode(self.status),
            headers,
            reader,
            len,
            None,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms_and_cookies_parse() {
        assert_eq!(
            parse_form(b"name=Anna+Rossi&card=aa%3Cb&x"),
            vec![
                ("name".into(), "Anna Rossi".into()),
                ("card".into(), "aa<b".into()),
                ("x".into(), "".into())
            ]
        );
        assert_eq!(
            parse_cookies("a=1; fg_session=xyz ;b"),
            vec![
                ("a".into(), "1".into()),
                ("fg_session".into(), "xyz".into())
            ]
        );
        assert_eq!(encode("a b&c"), "a+b%26c");
    }

    fn req(origin: Option<&str>, host: Option<&str>, site: Option<&str>) -> Req {
        Req {
            method: Method::Post,
            path: "/x".into(),
            query: vec![],
            form: vec![],
            cookies: vec![],
            remote: None,
            accept_language: None,
            origin: origin.map(Into::into),
            host: host.map(Into::into),
            sec_fetch_site: site.map(Into::into),
        }
    }

    #[test]
    fn same_origin_case_table() {
        let host = Some("lab.local:8443");
        // (Origin, Host, Sec-Fetch-Site) -> same origin?
        type Case<'a> = (Option<&'a str>, Option<&'a str>, Option<&'a str>, bool);
        let cases: &[Case] = &[
            // Old browsers and tools send neither header: the CSRF token decides.
            (None, host, None, true),
            (None, None, None, true),
            (Some("https://lab.local:8443"), host, None, true),
            // The scheme is not compared: one port serves one scheme.
            (Some("http://lab.local:8443"), host, None, true),
            (
                Some("https://lab.local:8443"),
                host,
                Some("same-origin"),
                true,
            ),
            (None, host, Some("same-origin"), true),
            // Typed in the address bar or a bookmark.
            (None, host, Some("none"), true),
            // Sec-Fetch-Site alone refuses, whatever Origin says.
            (None, host, Some("cross-site"), false),
            (None, host, Some("same-site"), false),
            (
                Some("https://lab.local:8443"),
                host,
                Some("cross-site"),
                false,
            ),
            (None, host, Some(""), false),
            // Origin alone refuses.
            (Some("https://evil.example"), host, None, false),
            (
                Some("https://evil.example"),
                host,
                Some("same-origin"),
                false,
            ),
            (Some("https://lab.local"), host, None, false),
            (Some("https://lab.local:8444"), host, None, false),
            (
                Some("https://lab.local:8443.evil.example"),
                host,
                None,
                false,
            ),
            (
                Some("https://evil.example/lab.local:8443"),
                host,
                None,
                false,
            ),
            (Some("null"), host, None, false),
            (Some(""), host, None, false),
            // No Host to compare with: Origin cannot be checked.
            (Some("https://evil.example"), None, None, true),
        ];
        for &(origin, host, site, want) in cases {
            assert_eq!(
                req(origin, host, site).same_origin(),
                want,
                "Origin {origin:?}, Host {host:?}, Sec-Fetch-Site {site:?}"
            );
        }
    }
}
