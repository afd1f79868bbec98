//! Account rules: SMS codes, sign-up, login, sessions and profile changes.
