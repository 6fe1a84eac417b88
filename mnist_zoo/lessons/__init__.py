"""Lessons: a course's comparison as one grid sweep, with the plots and the measured answer."""
