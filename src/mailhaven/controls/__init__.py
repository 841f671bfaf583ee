"""What a subject has said about their processing: restriction, objection and consent
(SPEC N5, N6), and the one lookup every processing path makes before it acts. Below the
features that consult it (events, tracking, delivery); the privacy engine writes it."""
