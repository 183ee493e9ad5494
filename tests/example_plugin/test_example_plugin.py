from fastai_sparse.testing import check_plugin


def test_plugin_conforms():
    check_plugin("example")
