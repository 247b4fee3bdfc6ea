//! `<plugins>`: `<simpleAuthenticationPlugin>` users, and the plugins whose absence
//! would open the broker.

use super::read::Reader;
use super::xml::Element;
use super::{AuthUser, ConfigError};

/// Plugins whose absence would let in clients the original broker kept out. Ignoring
/// them would turn a locked-down ActiveMQ config into an open Tandem, so they stop the
/// load instead.
const FAIL_CLOSED_PLUGINS: &[&str] = &[
    "jaasAuthenticationPlugin",
    "jaasCertificateAuthenticationPlugin",
    "jaasDualAuthenticationPlugin",
    "authorizationPlugin",
];

impl Reader<'_> {
    pub(super) fn plugins(
        &mut self,
        el: &Element,
        path: &str,
        users: &mut Vec<AuthUser>,
        auth_enabled: &mut bool,
    ) -> Result<(), ConfigError> {
        self.check_attrs(el, path, &[]);
        for c in &el.children {
            let cpath = format!("{path}/{}", c.name);
            if FAIL_CLOSED_PLUGINS.contains(&c.name.as_str()) {
                return Err(self.el_err(
                    c,
                    "not supported, and starting without it would let in clients it keeps \
                     out; use <simpleAuthenticationPlugin>, or remove this plugin to accept that",
                ));
            }
            if c.name != "simpleAuthenticationPlugin" {
                self.ignore_element(c, path);
                continue;
            }
            if *auth_enabled {
                return Err(self.el_err(c, "appears twice; keep one"));
            }
            *auth_enabled = true;
            self.check_attrs(c, &cpath, &[]);
            for u in &c.children {
                if u.name != "users" {
                    self.ignore_element(u, &cpath);
                    continue;
                }
                let upath = format!("{cpath}/users");
                self.check_attrs(u, &upath, &[]);
                for user in &u.children {
                    if user.name == "authenticationUser" {
                        self.user(user, &upath, users)?;
                    } else {
                        self.ignore_element(user, &upath);
                    }
                }
            }
        }
        Ok(())
    }

    pub(super) fn user(
        &mut self,
        el: &Element,
        parent: &str,
        users: &mut Vec<AuthUser>,
    ) -> Result<(), ConfigError> {
        self.check_attrs(
            el,
            &format!("{parent}/authenticationUser"),
            &["username", "password", "groups"],
        );
        let (username, ua) = self.required(el, "username")?;
        if username.is_empty() {
            return Err(self.attr_err(el, ua, "expected a non-empty username"));
        }
        if users.iter().any(|u| u.username == username) {
            return Err(self.attr_err(el, ua, "this username is listed twice"));
        }
        let (password, _) = self.required(el, "password")?;
        let groups = self
            .value(el, "groups")?
            .map(|(g, _)| {
                g.split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default();
        users.push(AuthUser {
            username,
            password,
            groups,
        });
        Ok(())
    }
}
