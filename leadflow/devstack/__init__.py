"""The embedded dev stack: broker, Postgres and the four services on one machine (`leadflow dev`,
the tests and the bench). Needs the `devstack` extra; nothing in production imports it."""
