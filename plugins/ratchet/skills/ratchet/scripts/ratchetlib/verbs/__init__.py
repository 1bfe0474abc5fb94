"""What the CLI's verbs do, built from the layers above (loop/ for the headless loop)."""
