"""Edits of the test manifest (a dict from conftest.SMALL) at a key path."""


def _parent(data: dict, path: list):
    for part in path[:-1]:
        data = data[part]
    return data


def set_in(path: list, value):
    def edit(data):
        _parent(data, path)[path[-1]] = value
    return edit


def remove(path: list):
    def edit(data):
        del _parent(data, path)[path[-1]]
    return edit


def append(path: list, value):
    def edit(data):
        _parent(data, path)[path[-1]].append(value)
    return edit
