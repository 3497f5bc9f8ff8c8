"""Grades helpers."""

def average_grade(grades):
    """Average grade."""
    if not grades:
        return 0.0
    return sum(grades) / len(grades)

def letter_for_grade(value):
    """Letter for grade."""
    if value >= 90:
        return 'A'
    if value >= 80:
        return 'B'
    if value >= 70:
        return 'C'
    return 'F'
