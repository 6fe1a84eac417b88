"""The serve stage: a local page to draw digits on and a JSON API, both running the zoo's models side by side."""
