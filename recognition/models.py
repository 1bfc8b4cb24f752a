"""Recognition models (kiosks, check-ins) arrive with the kiosk issue."""
