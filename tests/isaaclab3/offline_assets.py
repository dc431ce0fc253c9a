"""An offline Isaac asset root with just what Isaac Lab 3's cartpole needs, built from pip packages.

Isaac Lab resolves ``{ISAACSIM_ASSET_ROOT}/Isaac/IsaacLab/...`` for the cartpole robot and the
ground plane. The ``newton`` wheel ships Isaac Lab's cartpole flattened to USDA (its defaultPrim
says ``cartPole`` while the prim is ``cartpole``); the ground plane is authored here with the prims
Isaac Lab's spawner edits: ``Environment`` (scaled), ``Environment/Geometry`` (a mesh with ``st``
UVs), ``Looks/theGrid/Shader`` and a collision ``Plane``.
"""

from __future__ import annotations

import os

CARTPOLE = "Isaac/IsaacLab/Robots/Classic/Cartpole/cartpole.usd"
GROUND = "Isaac/IsaacLab/Environments/Grid/default_ground_plane_checker_v1/default_ground_plane.usda"


def build(root: str) -> str:
    """Write the asset root under ``root`` (idempotent) and return it."""
    import newton.examples
    from pxr import Gf, Sdf, Usd, UsdGeom, UsdPhysics, UsdShade

    cartpole = os.path.join(root, CARTPOLE)
    if not os.path.exists(cartpole):
        src = os.path.join(os.path.dirname(newton.examples.__file__), "assets", "cartpole_single_pendulum.usda")
        os.makedirs(os.path.dirname(cartpole), exist_ok=True)
        with open(src, encoding="utf-8") as f:
            text = f.read().replace('defaultPrim = "cartPole"', 'defaultPrim = "cartpole"')
        ascii_copy = cartpole[:-4] + ".usda"
        with open(ascii_copy, "w", encoding="utf-8") as f:
            f.write(text)
        Sdf.Layer.FindOrOpen(ascii_copy).Export(cartpole)

    ground = os.path.join(root, GROUND)
    if not os.path.exists(ground):
        os.makedirs(os.path.dirname(ground), exist_ok=True)
        stage = Usd.Stage.CreateNew(ground)
        UsdGeom.SetStageUpAxis(stage, UsdGeom.Tokens.z)
        UsdGeom.SetStageMetersPerUnit(stage, 1.0)
        top = UsdGeom.Xform.Define(stage, "/GroundPlane")
        stage.SetDefaultPrim(top.GetPrim())
        UsdGeom.Xform.Define(stage, "/GroundPlane/Environment").AddScaleOp().Set(Gf.Vec3f(1, 1, 1))
        mesh = UsdGeom.Mesh.Define(stage, "/GroundPlane/Environment/Geometry")
        half = 50.0
        mesh.CreatePointsAttr([(-half, -half, 0), (half, -half, 0), (half, half, 0), (-half, half, 0)])
        mesh.CreateFaceVertexCountsAttr([4])
        mesh.CreateFaceVertexIndicesAttr([0, 1, 2, 3])
        uv = UsdGeom.PrimvarsAPI(mesh).CreatePrimvar("st", Sdf.ValueTypeNames.TexCoord2fArray, UsdGeom.Tokens.vertex)
        uv.Set([(0, 0), (1, 0), (1, 1), (0, 1)])
        UsdShade.Material.Define(stage, "/GroundPlane/Looks/theGrid")
        shader = UsdShade.Shader.Define(stage, "/GroundPlane/Looks/theGrid/Shader")
        shader.CreateIdAttr("UsdPreviewSurface")
        shader.CreateInput("diffuse_tint", Sdf.ValueTypeNames.Color3f).Set((1, 1, 1))
        plane = UsdGeom.Plane.Define(stage, "/GroundPlane/CollisionPlane")
        plane.CreateAxisAttr("Z")
        UsdPhysics.CollisionAPI.Apply(plane.GetPrim())
        stage.GetRootLayer().Save()
    return root
