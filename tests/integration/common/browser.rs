//! A browser for panel tests: a real HTTP client (ureq) that keeps the session cookie,
//! follows nothing by itself, and picks the CSRF token out of the last page.

use std::net::SocketAddr;

pub struct Browser {
    base: String,
    agent: ureq::Agent,
    pub cookie: Option<String>,
    pub csrf: Option<String>,
}

/// What came back.
#[derive(Debug)]
pub struct Page {
    pub status: u16,
    pub location: Option<String>,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Page {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

impl Browser {
    pub fn new(panel: SocketAddr) -> Browser {
        let agent = ureq::Agent::config_builder()
            .max_redirects(0)
            .http_status_as_error(false)
            .timeout_global(Some(std::time::Duration::from_secs(10)))
            .build()
            .into();
        Browser {
            base: format!("http://{panel}"),
            agent,
            cookie: None,
            csrf: None,
        }
    }

    /// The same over HTTPS, accepting the panel's self-signed certificate.
    pub fn tls(panel: SocketAddr) -> Browser {
        let tls = ureq::tls::TlsConfig::builder()
            .disable_verification(true)
            .build();
        let agent = ureq::Agent::config_builder()
            .max_redirects(0)
            .http_status_as_error(false)
            .timeout_global(Some(std::time::Duration::from_secs(10)))
            .tls_config(tls)
            .build()
            .into();
        Browser {
            base: format!("https://{panel}"),
            agent,
            cookie: None,
            csrf: None,
        }
    }

    fn finish(&mut self, resp: Result<ureq::http::Response<ureq::Body>, ureq::Error>) -> Page {
        let mut resp = resp.expect("HTTP request");
        let status = resp.status().as_u16();
        let headers: Vec<(String, String)> = resp
            .headers()
            .iter()
            .map(|(k, v)| (k.as_str().to_string(), v.to_str().unwrap_or("").to_string()))
            .collect();
        for (k, v) in &headers {
            if k.eq_ignore_ascii_case("set-cookie") {
                if let Some(rest) = v.strip_prefix("fg_session=") {
                    let token = rest.split(';').next().unwrap_or("");
                    self.cookie = (!token.is_empty()).then(|| token.to_string());
                }
            }
        }
        let location = headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("location"))
            .map(|(_, v)| v.clone());
        let body = resp.body_mut().read_to_string().unwrap_or_default();
        if let Some(token) = body
            .split("name=\"csrf\" value=\"")
            .nth(1)
            .and_then(|r| r.split('"').next())
        {
            self.csrf = Some(token.to_string());
        }
        Page {
            status,
            location,
            headers,
            body,
        }
    }

    pub fn get(&mut self, path: &str) -> Page {
        let mut rq = self.agent.get(format!("{}{path}", self.base));
        if let Some(c) = &self.cookie {
            rq = rq.header("Cookie", format!("fg_session={c}"));
        }
        let resp = rq.call();
        self.finish(resp)
    }

    /// Only the status of a GET, the body left unread (a live event stream never ends).
    pub fn get_status(&mut self, path: &str) -> u16 {
        let mut rq = self.agent.get(format!("{}{path}", self.base));
        if let Some(c) = &self.cookie {
            rq = rq.header("Cookie", format!("fg_session={c}"));
        }
        rq.call().expect("HTTP request").status().as_u16()
    }

    /// Posts a form as the page would: with the current CSRF token unless `csrf` is given.
    pub fn post(&mut self, path: &str, form: &[(&str, &str)]) -> Page {
        let token = self.csrf.clone().unwrap_or_default();
        let mut fields: Vec<(&str, &str)> = form.to_vec();
        if !fields.iter().any(|(k, _)| *k == "csrf") {
            fields.push(("csrf", &token));
        }
        self.post_raw(path, &fields, &[])
    }

    pub fn post_raw(
        &mut self,
        path: &str,
        form: &[(&str, &str)],
        headers: &[(&str, &str)],
    ) -> Page {
        let mut rq = self.agent.post(format!("{}{path}", self.base));
        if let Some(c) = &self.cookie {
            rq = rq.header("Cookie", format!("fg_session={c}"));
        }
        for (k, v) in headers {
            rq = rq.header(*k, *v);
        }
        let resp = rq.send_form(form.iter().copied());
        self.finish(resp)
    }

    /// Logs in; returns the page the login redirected to.
    pub fn login(&mut self, email: &str, password: &str) -> Page {
        let p = self.post("/login", &[("email", email), ("password", password)]);
        assert_eq!(p.status, 303, "login failed: {}", p.body);
        let to = p.location.clone().unwrap();
        self.get(&to)
    }
}
