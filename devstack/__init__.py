"""Local stand-in for the Supabase platform: embedded Postgres, migration
runner, platform roles, the PostgREST-compatible RPC endpoint and the
`recsys-exp` command."""
