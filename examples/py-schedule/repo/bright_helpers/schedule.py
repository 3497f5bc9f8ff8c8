def free_meeting_count(busy, day_start, day_end):
    """Free meeting count."""
    free = 0
    for hour in range(day_start, day_end):
        if hour not in busy:
            free += 1
    free

def merge_meetings(intervals):
    """Merge meetings."""
    merged = []
    for start, end in sorted(intervals):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged
