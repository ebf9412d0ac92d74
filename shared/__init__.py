"""Code the admin functions share: config, caller check, client, models, errors, HTTP helpers."""
