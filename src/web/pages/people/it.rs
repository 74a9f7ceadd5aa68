//! Italian texts of the people area (see `web::i18n`): English key, Italian text.

pub const IT: &[(&str, &str)] = &[
    ("Authorizations", "Abilitazioni"),
    ("Bulk grant", "Abilitazione multipla"),
    ("Machine", "Macchina"),
    ("Type", "Tipo"),
    ("Needs authorization", "Serve l'abilitazione"),
    ("Authorized members", "Soci abilitati"),
    ("Machines of this type need no authorization: every active member may use it.", "Le macchine di questo tipo non richiedono abilitazione: ogni socio attivo può usarla."),
    ("This machine is blocked: only roles that may use all machines can start it.", "Questa macchina è bloccata: solo i ruoli che possono usare tutte le macchine possono avviarla."),
    ("Roles that may use all machines without an authorization:", "Ruoli che possono usare tutte le macchine senza abilitazione:"),
    ("Grant to", "Abilita"),
    ("Grant", "Abilita"),
    ("Nobody holds an authorization for this machine.", "Nessuno è abilitato su questa macchina."),
    ("Name", "Nome"),
    ("Card", "Tessera"),
    ("Role", "Ruolo"),
    ("disabled", "disattivato"),
    ("Revoke", "Revoca"),
    ("Choose a member and a machine.", "Scegli un socio e una macchina."),
    ("This member was deleted; only their anonymised history remains.", "Questo socio è stato eliminato; resta solo il suo storico anonimo."),
    ("One machine, many members: members who already hold the authorization are skipped.", "Una macchina, molti soci: chi è già abilitato viene saltato."),
    ("Choose", "Scegli"),
    ("authorized", "abilitato"),
    ("Grant to the ticked members", "Abilita i soci selezionati"),
    ("Grant to everyone listed", "Abilita tutti i soci elencati"),
    ("Member added.", "Socio aggiunto."),
    ("Changes saved.", "Modifiche salvate."),
    ("Member deleted; their history is kept anonymised.", "Socio eliminato; il suo storico resta, in forma anonima."),
    ("Member disabled: their card no longer opens machines.", "Socio disattivato: la sua tessera non avvia più le macchine."),
    ("Member enabled.", "Socio riattivato."),
    ("Authorization granted.", "Abilitazione concessa."),
    ("Authorization revoked.", "Abilitazione revocata."),
    ("Role added.", "Ruolo aggiunto."),
    ("Role saved.", "Ruolo salvato."),
    ("Role deleted.", "Ruolo eliminato."),
    ("New authorizations:", "Nuove abilitazioni:"),
    ("This card UID does not have the usual 8 hexadecimal digits; check that the boards read it the same way.", "Questo UID non ha le solite 8 cifre esadecimali; verifica che le schede lo leggano allo stesso modo."),
    ("Roles", "Ruoli"),
    ("Unknown cards", "Tessere sconosciute"),
    ("Previous", "Precedente"),
    ("Page", "Pagina"),
    ("Next", "Successiva"),
    ("Back", "Indietro"),
    ("yes", "sì"),
    ("no", "no"),
    ("allowed (role may use all machines)", "consentito (il ruolo può usare tutte le macchine)"),
    ("allowed", "consentito"),
    ("unknown card", "tessera sconosciuta"),
    ("refused: member is disabled", "rifiutato: socio disattivato"),
    ("refused: member was deleted", "rifiutato: socio eliminato"),
    ("refused: machine is blocked", "rifiutato: macchina bloccata"),
    ("refused: no authorization", "rifiutato: manca l'abilitazione"),
    ("refused: nobody else in the building", "rifiutato: nessun altro nell'edificio"),
    ("deleted", "eliminato"),
    ("active", "attivo"),
    ("Not deleted", "Non eliminati"),
    ("Active", "Attivi"),
    ("Disabled", "Disattivati"),
    ("Deleted", "Eliminati"),
    ("All", "Tutti"),
    ("With or without card", "Con o senza tessera"),
    ("With a card", "Con tessera"),
    ("Without a card", "Senza tessera"),
    ("Add member", "Aggiungi socio"),
    ("Cards refused recently that belong to nobody:", "Tessere rifiutate di recente che non appartengono a nessuno:"),
    ("Turn them into members", "Trasformale in soci"),
    ("Search", "Cerca"),
    ("name, surname, email or card", "nome, cognome, email o tessera"),
    ("All roles", "Tutti i ruoli"),
    ("State", "Stato"),
    ("Filter", "Filtra"),
    ("Members found:", "Soci trovati:"),
    ("Last use", "Ultimo utilizzo"),
    ("Edit member", "Modifica socio"),
    ("The browser's", "Quella del browser"),
    ("Please correct the following:", "Correggi quanto segue:"),
    ("Surname", "Cognome"),
    ("Card UID", "UID tessera"),
    ("Hexadecimal as the boards read it; leave empty for no card.", "In esadecimale come lo leggono le schede; lascia vuoto per nessuna tessera."),
    ("Panel language", "Lingua del pannello"),
    ("Receives the weekly summary by email", "Riceve il riepilogo settimanale via email"),
    ("Disabled: the card opens no machine", "Disattivato: la tessera non avvia nessuna macchina"),
    ("Cancel", "Annulla"),
    ("Edit", "Modifica"),
    ("Enable", "Riattiva"),
    ("Disable", "Disattiva"),
    ("New one-time password", "Nuova password monouso"),
    ("Delete", "Elimina"),
    ("This member's role may log into the panel, but without an email address they cannot.", "Il ruolo di questo socio può accedere al pannello, ma senza un indirizzo email non è possibile."),
    ("none", "nessuna"),
    ("Weekly summary", "Riepilogo settimanale"),
    ("Panel access", "Accesso al pannello"),
    ("no (role)", "no (ruolo)"),
    ("no password yet", "nessuna password ancora"),
    ("Member since", "Socio dal"),
    ("Total hours", "Ore totali"),
    ("Hours this month", "Ore questo mese"),
    ("Uses", "Utilizzi"),
    ("Authorization", "Abilitazione"),
    ("At the machine now", "Alla macchina ora"),
    ("not needed", "non serve"),
    ("not authorized", "non abilitato"),
    ("Recent uses", "Utilizzi recenti"),
    ("No uses yet.", "Ancora nessun utilizzo."),
    ("Start", "Inizio"),
    ("Duration", "Durata"),
    ("Sent late by the board from its offline memory", "Inviato in ritardo dalla scheda dalla sua memoria offline"),
    ("replayed", "differito"),
    ("All uses of this member", "Tutti gli utilizzi di questo socio"),
    ("Maintenance interventions signed:", "Interventi di manutenzione registrati:"),
    ("Delete member", "Elimina socio"),
    ("Deleting a member keeps the lab's history but removes the person from it:", "Eliminare un socio conserva lo storico del laboratorio ma ne toglie la persona:"),
    ("the name becomes Deleted member; surname, email, card and panel password are removed;", "il nome diventa Deleted member; cognome, email, tessera e password del pannello vengono rimossi;"),
    ("their authorizations are removed and any panel session ends;", "le sue abilitazioni vengono rimosse e ogni sua sessione nel pannello termina;"),
    ("their card becomes unknown to the boards and can be given to someone else;", "la sua tessera diventa sconosciuta alle schede e può essere data a qualcun altro;"),
    ("their uses and maintenance interventions stay in the history, anonymised:", "i suoi utilizzi e interventi di manutenzione restano nello storico, in forma anonima:"),
    ("This cannot be undone.", "Non si può annullare."),
    ("Panel password", "Password del pannello"),
    ("A one-time password was set. It is shown only now: give it to the member.", "È stata impostata una password monouso. Viene mostrata solo ora: consegnala al socio."),
    ("Log in with", "Accede con"),
    ("One-time password", "Password monouso"),
    ("They must choose a new password when they first log in. Their open sessions have ended.", "Al primo accesso dovrà scegliere una nuova password. Le sue sessioni aperte sono terminate."),
    ("Enter a name of 1 to 100 characters, on one line.", "Inserisci un nome da 1 a 100 caratteri, su una riga."),
    ("The surname can have up to 100 characters, on one line.", "Il cognome può avere fino a 100 caratteri, su una riga."),
    ("Enter an email address like anna@example.org, or nothing.", "Inserisci un indirizzo email come anna@example.org, oppure niente."),
    ("A card UID is hexadecimal digits as the boards read them, e.g. aabbccd1.", "L'UID di una tessera è fatto di cifre esadecimali come le leggono le schede, ad es. aabbccd1."),
    ("Choose a role from the list.", "Scegli un ruolo dall'elenco."),
    ("Choose a language from the list.", "Scegli una lingua dall'elenco."),
    ("The weekly summary is sent by email: enter an email address first.", "Il riepilogo settimanale arriva via email: inserisci prima un indirizzo email."),
    ("This card already belongs to", "Questa tessera appartiene già a"),
    ("This email address already belongs to", "Questo indirizzo email appartiene già a"),
    ("You cannot disable yourself.", "Non puoi disattivare te stesso."),
    ("You would lose access to the panel: keep a role that may log into the panel.", "Perderesti l'accesso al pannello: mantieni un ruolo che può accedere al pannello."),
    ("Deleted member", "Socio eliminato"),
    ("You cannot delete yourself.", "Non puoi eliminare te stesso."),
    ("Change your own password with Change password.", "Cambia la tua password con Cambia password."),
    ("Only members whose role may log into the panel get a panel password.", "Solo i soci il cui ruolo può accedere al pannello ricevono una password del pannello."),
    ("Add an email address first: it is the name they log in with.", "Aggiungi prima un indirizzo email: è il nome con cui accede."),
    ("Add role", "Aggiungi ruolo"),
    ("May use all machines", "Può usare tutte le macchine"),
    ("May sign off maintenance", "Può registrare la manutenzione"),
    ("May log into the panel", "Può accedere al pannello"),
    ("reserved", "riservato"),
    ("Reserved roles come with the lab and cannot be changed or deleted.", "I ruoli riservati sono predefiniti e non si possono modificare né eliminare."),
    ("Edit role", "Modifica ruolo"),
    ("Level 2 on the boards: every machine, even blocked ones, without authorizations.", "Livello 2 sulle schede: ogni macchina, anche bloccata, senza abilitazioni."),
    ("Their card can record a maintenance intervention on a board.", "La sua tessera può registrare un intervento di manutenzione su una scheda."),
    ("Full access to this panel, with an email and a password.", "Accesso completo a questo pannello, con email e password."),
    ("Reserved role", "Ruolo riservato"),
    ("Enter a role name of 1 to 100 characters, on one line, not only digits.", "Inserisci un nome di ruolo da 1 a 100 caratteri, su una riga, non solo cifre."),
    ("This is your own role: without May log into the panel you would lock yourself out.", "Questo è il tuo ruolo: senza Può accedere al pannello resteresti chiuso fuori."),
    ("Another role already has this name.", "Un altro ruolo ha già questo nome."),
    ("Delete role", "Elimina ruolo"),
    ("Nobody holds this role. Deleting it cannot be undone.", "Nessuno ha questo ruolo. L'eliminazione non si può annullare."),
    ("Members holding this role:", "Soci con questo ruolo:"),
    ("Give them another role before deleting it (deleted members count too).", "Assegna loro un altro ruolo prima di eliminarlo (contano anche i soci eliminati)."),
    ("Cards the boards refused because no member holds them, most recent first. Create a member to give one its owner.", "Tessere rifiutate dalle schede perché nessun socio le possiede, dalla più recente. Crea un socio per darle un proprietario."),
    ("No unknown cards.", "Nessuna tessera sconosciuta."),
    ("Attempts", "Tentativi"),
    ("Last seen", "Ultima volta"),
    ("Create member", "Crea socio"),
];

#[cfg(test)]
mod tests {
    use crate::web::i18n::{tr, Lang};

    /// Texts whose Italian is the same word.
    const SAME: &[&str] = &["Email", "no", "staff"];

    /// `i18n`'s test sees a translated literal only when the call fits on one line, and
    /// rustfmt splits long calls: this one finds every `tr(` of the area however wrapped.
    #[test]
    fn every_text_of_the_area_has_an_italian_translation() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/src/web/pages/people");
        let mut missing = Vec::new();
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            let text = std::fs::read_to_string(&path).unwrap();
            for part in text.split("tr(").skip(1) {
                let Some(rest) = part.trim_start().strip_prefix("lang") else {
                    continue;
                };
                let Some(rest) = rest.trim_start().strip_prefix(',') else {
                    continue;
                };
                let Some(rest) = rest.trim_start().strip_prefix('"') else {
                    continue;
                };
                let key: &'static str = rest[..rest.find('"').unwrap()].to_string().leak();
                if tr(Lang::It, key) == key && !SAME.contains(&key) {
                    missing.push(format!("{}: {key}", path.display()));
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
