/* presence 1.0 -> 1.1, in place: the registry and its live sessions stay */

\echo Use "ALTER EXTENSION presence UPDATE TO '1.1'" to load this file. \quit

-- stats() counts users and sessions, invisible ones too: not for PUBLIC,
-- like sessions().
REVOKE EXECUTE ON FUNCTION presence.stats() FROM PUBLIC;
