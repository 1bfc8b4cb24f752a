"""Enrollment models (people, photos, index versions) arrive with the enrollment issue."""
