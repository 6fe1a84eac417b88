"""The page of `mnist-zoo serve`: a local page to draw digits on and a JSON API, both running the zoo's models side by side."""
