"""Accounts in scoring: companies that buy as a group.

`matching` (pure) decides which account a lead belongs to and how sure we are;
`account_score` (pure) rolls member leads up into an account score, grade and MQA;
`imports` (pure) reads a CRM export; `domains` wraps the bundled public suffix list;
`store`, `handlers` and `api` are the tables, the use cases and the HTTP routes.
"""
