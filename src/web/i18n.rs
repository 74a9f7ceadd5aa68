//! Panel languages. The English text is the key; other languages map it. A member's
//! chosen language wins, else the browser's `Accept-Language`, else the lab default.
//! A test checks that every `tr(lang, "…")` in the panel's source has an Italian entry.

use std::collections::HashMap;
use std::sync::OnceLock;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lang {
    En,
    It,
}

impl Lang {
    pub fn code(self) -> &'static str {
        match self {
            Lang::En => "en",
            Lang::It => "it",
        }
    }

    pub fn from_code(code: &str) -> Option<Lang> {
        match code.get(..2).map(|c| c.to_ascii_lowercase()).as_deref() {
            Some("en") => Some(Lang::En),
            Some("it") => Some(Lang::It),
            _ => None,
        }
    }

    /// The first supported language of an `Accept-Language` header, by quality.
    pub fn from_accept(header: &str) -> Option<Lang> {
        let mut langs: Vec<(f32, Lang)> = header
            .split(',')
            .filter_map(|part| {
                let mut it = part.trim().split(';');
                let lang = Lang::from_code(it.next()?.trim())?;
                let q = it
                    .find_map(|p| p.trim().strip_prefix("q=").and_then(|q| q.parse().ok()))
                    .unwrap_or(1.0);
                Some((q, lang))
            })
            .collect();
        langs.sort_by(|a, b| b.0.total_cmp(&a.0));
        langs.first().map(|(_, l)| *l)
    }
}

/// The translation of an English panel text.
pub fn tr(lang: Lang, en: &'static str) -> &'static str {
    match lang {
        Lang::En => en,
        Lang::It => italian().get(en).copied().unwrap_or(en),
    }
}

fn italian() -> &'static HashMap<&'static str, &'static str> {
    use crate::web::pages::{outbox, people, presence, reset, system, workshop};
    static MAP: OnceLock<HashMap<&'static str, &'static str>> = OnceLock::new();
    MAP.get_or_init(|| {
        [
            IT,
            people::IT,
            workshop::IT,
            system::IT,
            presence::IT,
            reset::IT,
            outbox::IT,
        ]
        .into_iter()
        .flat_map(|t| t.iter().copied())
        .collect()
    })
}

/// Texts of the frame, login and dashboard; each area of the panel has its own `IT`.
const IT: &[(&str, &str)] = &[
    ("Your role does not allow this.", "Il tuo ruolo non lo consente."),
    ("viewer", "sola lettura"),
    ("staff", "staff"),
    ("administrator", "amministratore"),
    ("Viewer: read-only screens. Staff: members, cards, machines, uses, maintenance, the register. Administrator: also settings, email, roles, backups and other staff's passwords.", "Sola lettura: schermate senza modifiche. Staff: soci, tessere, macchine, utilizzi, manutenzione, registro presenze. Amministratore: anche impostazioni, email, ruoli, backup e password degli altri."),
    ("Your email address", "Il tuo indirizzo email"),
    ("Enter a valid email address.", "Inserisci un indirizzo email valido."),
    ("Your email address (to log in and to get reset links)", "Il tuo indirizzo email (per accedere e ricevere i link di reimpostazione)"),
    ("This email address belongs to another member.", "Questo indirizzo email appartiene a un altro socio."),
    ("Too many failed attempts. Wait a moment and try again.", "Troppi tentativi falliti. Attendi un momento e riprova."),
    ("Dashboard", "Cruscotto"),
    ("Members", "Soci"),
    ("Machines", "Macchine"),
    ("History", "Storico"),
    ("Maintenance", "Manutenzione"),
    ("System", "Sistema"),
    ("Settings", "Impostazioni"),
    ("Log out", "Esci"),
    ("Log in", "Accedi"),
    ("Email", "Email"),
    ("Password", "Password"),
    ("Wrong email or password.", "Email o password errati."),
    (
        "Too many failed attempts from here. Wait a moment and try again.",
        "Troppi tentativi falliti da qui. Attendi un momento e riprova.",
    ),
    (
        "The form expired. Please try again.",
        "Il modulo è scaduto. Riprova.",
    ),
    ("Change password", "Cambia password"),
    (
        "Choose a new password before you continue.",
        "Scegli una nuova password prima di continuare.",
    ),
    ("Current password", "Password attuale"),
    ("New password", "Nuova password"),
    ("Repeat the new password", "Ripeti la nuova password"),
    ("Password changed.", "Password cambiata."),
    (
        "The current password is wrong.",
        "La password attuale è errata.",
    ),
    (
        "The new passwords differ.",
        "Le nuove password non coincidono.",
    ),
    ("Use at least 10 characters.", "Usa almeno 10 caratteri."),
    ("Save", "Salva"),
    ("free", "libera"),
    ("in use", "in uso"),
    ("blocked", "bloccata"),
    ("maintenance due", "manutenzione da fare"),
    ("offline", "non in linea"),
    ("online", "in linea"),
    ("never seen", "mai vista"),
    ("by", "da"),
    ("since", "da"),
    ("In use now", "In uso ora"),
    (
        "Emails are waiting for the email settings:",
        "Le email attendono le impostazioni di posta:",
    ),
    (
        "Calendar or webhook changes are waiting for their settings:",
        "Le modifiche al calendario o ai webhook attendono le loro impostazioni:",
    ),
    (
        "message could not be delivered.",
        "messaggio non è stato consegnato.",
    ),
    (
        "messages could not be delivered.",
        "messaggi non sono stati consegnati.",
    ),
    (
        "message waits for the network; it is sent when it is back.",
        "messaggio attende la rete; parte quando torna.",
    ),
    (
        "messages wait for the network; they are sent when it is back.",
        "messaggi attendono la rete; partono quando torna.",
    ),
    ("Members today", "Soci oggi"),
    ("Hours this week", "Ore questa settimana"),
    ("Board", "Scheda"),
    ("last seen", "ultimo contatto"),
    ("No machines yet.", "Ancora nessuna macchina."),
    ("Page not found.", "Pagina non trovata."),
    (
        "Something went wrong; it has been logged.",
        "Qualcosa è andato storto; l'errore è stato registrato.",
    ),
    ("Request too large.", "Richiesta troppo grande."),
    ("Language", "Lingua"),
    ("Live", "In diretta"),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_language_picks_the_best_supported() {
        assert_eq!(Lang::from_accept("it-IT,it;q=0.9,en;q=0.8"), Some(Lang::It));
        assert_eq!(
            Lang::from_accept("de-DE, en;q=0.5, it;q=0.7"),
            Some(Lang::It)
        );
        assert_eq!(Lang::from_accept("fr"), None);
        assert_eq!(Lang::from_accept(""), None);
    }

    /// Every text the panel translates has an Italian entry.
    #[test]
    fn every_panel_text_has_an_italian_translation() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/src/web");
        let mut missing = Vec::new();
        let mut stack = vec![std::path::PathBuf::from(dir)];
        while let Some(p) = stack.pop() {
            for entry in std::fs::read_dir(&p).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    stack.push(path);
                    continue;
                }
                if path.ends_with("i18n.rs") {
                    continue;
                }
                let text = std::fs::read_to_string(&path).unwrap();
                for part in text.split("tr(lang, \"").skip(1) {
                    let key = &part[..part.find('"').unwrap()];
                    if !italian().contains_key(key) {
                        missing.push(format!("{}: {key}", path.display()));
                    }
                }
            }
        }
        assert!(
            missing.is_empty(),
            "missing Italian texts:\n{}",
            missing.join("\n")
        );
    }
}
