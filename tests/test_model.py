import pytest
import torch
import torchvision

from cropnet.config import ModelConfig
from cropnet.model import CropNet


@pytest.mark.parametrize("batch", [1, 3])
@pytest.mark.parametrize("input_size", [64, 96])
def test_heads_have_the_right_shapes_and_ranges(tiny_model_config, batch, input_size):
    config = ModelConfig(input_size=input_size, head_channels=8, head_hidden=16)
    model = CropNet(config).eval()
    with torch.no_grad():
        output = model(torch.randn(batch, 6, input_size, input_size))
    assert output.paired_logits.shape == (batch, 2)
    assert output.swapped_logits.shape == (batch, 2)
    assert output.top_left.shape == (batch, 2)
    assert torch.all((output.top_left >= 0) & (output.top_left <= 1))
    assert torch.isfinite(output.paired_logits).all()


def test_empty_batch_nocrash(tiny_model_config):
    model = CropNet(tiny_model_config).eval()
    with torch.no_grad():
        output = model(torch.zeros(0, 6, 64, 64))
    assert output.paired_logits.shape == (0, 2)


def test_first_convolution_reads_six_channels(tiny_model_config):
    model = CropNet(tiny_model_config)
    assert model.trunk[0].in_channels == 6
    with pytest.raises(RuntimeError):
        model(torch.zeros(1, 3, 64, 64))


def test_depth_is_a_config_value():
    small = sum(p.numel() for p in CropNet(ModelConfig(arch="resnet18")).parameters())
    large = sum(p.numel() for p in CropNet(ModelConfig(arch="resnet34")).parameters())
    assert large > small


def test_pretrained_trunk_copies_conv1_into_both_halves(tiny_model_config):
    reference = torchvision.models.resnet18(weights=None)
    model = CropNet(tiny_model_config)
    model.load_pretrained_trunk(reference.state_dict())
    conv1 = model.trunk[0].weight
    assert torch.allclose(conv1[:, :3], reference.conv1.weight / 2)
    assert torch.allclose(conv1[:, 3:], reference.conv1.weight / 2)
    assert torch.equal(model.trunk[4][0].conv1.weight, reference.layer1[0].conv1.weight)


def test_pretrained_weights_of_another_depth_are_refused(tiny_model_config):
    reference = torchvision.models.resnet50(weights=None)
    with pytest.raises((ValueError, RuntimeError)):
        CropNet(tiny_model_config).load_pretrained_trunk(reference.state_dict())
