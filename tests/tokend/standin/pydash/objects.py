"""Minimal get/set_/omit with pydash's semantics for dotted paths (tests only)."""
def _path(path):
    if isinstance(path, (list, tuple)):
        return list(path)
    return str(path).split(".") if path not in (None, "") else []

def get(obj, path, default=None):
    cur = obj
    for key in _path(path):
        if isinstance(cur, dict):
            if key not in cur:
                return default
            cur = cur[key]
        elif isinstance(cur, (list, tuple)) and str(key).isdigit() and int(key) < len(cur):
            cur = cur[int(key)]
        elif hasattr(cur, str(key)):
            cur = getattr(cur, str(key))
        else:
            return default
    return cur

def set_(obj, path, value):
    keys = _path(path)
    cur = obj
    for key in keys[:-1]:
        if isinstance(cur, dict):
            cur = cur.setdefault(key, {})
        else:
            if not hasattr(cur, key) or getattr(cur, key) is None:
                setattr(cur, key, {})
            cur = getattr(cur, key)
    if keys:
        if isinstance(cur, dict):
            cur[keys[-1]] = value
        else:
            setattr(cur, keys[-1], value)
    return obj

def omit(obj, *paths):
    drop = set()
    for p in paths:
        if isinstance(p, (list, tuple)):
            drop.update(p)
        else:
            drop.add(p)
    return {k: v for k, v in dict(obj).items() if k not in drop}
