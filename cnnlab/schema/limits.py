MAX_UPLOAD_BYTES = 4 * 2 ** 20
MAX_BODY_BYTES = 6 * 2 ** 20
MAX_JSON_DEPTH = 64


def json_depth(raw: bytes, limit: int) -> int:
    depth = deepest = 0
    in_string = escaped = False
    for ch in raw:
        if in_string:
            if escaped:
                escaped = False
            elif ch == 92:
                escaped = True
            elif ch == 34:
                in_string = False
        elif ch == 34:
            in_string = True
        elif ch in (91, 123):
            depth += 1
            if depth > deepest:
                deepest = depth
                if deepest > limit:
                    return deepest
        elif ch in (93, 125):
            depth -= 1
    return deepest
