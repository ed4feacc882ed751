import pytest

from histosynth.registry import Registry, RegistryError


def test_register_get_and_lazy():
    reg = Registry[object]("widget")
    reg.add("path", "pathlib:Path", help="a lazy entry")

    @reg.register("one")
    def one():
        return 1

    assert reg.names() == ["path", "one"]
    assert reg.get("one") is one
    import pathlib

    assert reg.get("path") is pathlib.Path
    assert reg.help("path") == "a lazy entry"
    with pytest.raises(RegistryError, match="unknown widget 'onee'; did you mean 'one'"):
        reg.get("onee")
    with pytest.raises(RegistryError, match="already registered"):
        reg.add("one", object())
