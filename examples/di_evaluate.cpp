// di_evaluate — the paper's table for one-step generators and their teacher: every model generates
// the same prompts × seeds (the same noise for the same seed), the images are decoded by the
// teacher's VAE, saved as PNG and scored by every reward given, as their originals' evaluation code
// scores 8-bit images; report.md prints mean ± standard error per metric on the paper's scales, time
// per image and its ratio to the teacher, paired bootstrap intervals of the differences to the
// reference model, per-category means (Parti's Category column) and diversity.
//
//   --teacher DIR          the diffusers pipeline (UNet, VAE, text encoders, scheduler) every model uses
//   --teacher-steps N      sample the teacher with N DDIM steps (repeatable; 0: do not evaluate it)
//   --guidance S           the teacher's classifier-free guidance scale
//   --generator SPEC       a one-step generator (repeatable): [NAME=]PATH[,t=T][,prediction=P][,lora=FILE]
//                          (evaluate/compared_models.hpp)
//   --prompts FILE         a .tsv table (its Prompt column; --category filters, the Category column
//                          groups) or one prompt a line; --max-prompts N takes the first N
//   the metrics: --image-reward, --pickscore, --clip, --hps, --aesthetic with their files
//                (rewards/reward_files.hpp); HPS's tokenizer defaults to the teacher's
// Writes into --out: report.md, metrics.json, metrics.csv, grids/, models/<model>/images/*.png and
// the batch records that let a rerun resume (evaluate/score_store.hpp).

#include "evaluate/compared_models.hpp"
#include "evaluate/report.hpp"
#include "evaluate/score_store.hpp"
#include "rewards/reward_files.hpp"

#include <diffinstruct/text/prompt_table.hpp>
#include <diffinstruct/text2image/metric_scorers.hpp>
#include <diffinstruct/util/error_report.hpp>
#include <diffinstruct/util/progress_bar.hpp>
#include <diffinstruct/util/threads.hpp>

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include <chrono>
#include <ctime>
#include <memory>

namespace {

using namespace evaluate;
namespace text = diffinstruct::text;

struct Args {
  std::string teacher, prompts, category, group_column = "Category", out = "out/evaluate", device = "cpu", precision = "fp32";
  std::vector<int64_t> teacher_steps = {50};
  double guidance = 7.5;
  std::vector<std::string> generators;
  reward_files::RewardFiles rewards;
  int64_t max_prompts = 0, seeds = 4, batch = 4, resolution = 0, resamples = 1000, grid_rows = 4;
  uint64_t seed = 0;
  int threads = 0;
  std::string command;
};

/// The prompts, and their groups when the file is a table with the group column.
std::pair<std::vector<std::string>, std::vector<std::string>> read_prompt_set(const Args& a) {
  std::vector<std::string> prompts, groups;
  const bool table = a.prompts.size() > 4 && a.prompts.compare(a.prompts.size() - 4, 4, ".tsv") == 0;
  if (table) {
    auto o = text::PromptTableOptions().group_column(a.group_column);
    if (!a.category.empty()) o.filter("Category", a.category);
    for (auto& row : text::read_prompt_table(a.prompts, o)) {
      prompts.push_back(std::move(row.text));
      if (!a.group_column.empty()) groups.push_back(std::move(row.group));
    }
  } else {
    TORCH_CHECK(a.category.empty(), "di_evaluate: --category filters a .tsv table's Category column; '", a.prompts, "' is a plain prompt file");
    prompts = text::read_prompt_file(a.prompts);
  }
  if (a.max_prompts > 0 && static_cast<int64_t>(prompts.size()) > a.max_prompts) {
    prompts.resize(static_cast<size_t>(a.max_prompts));
    if (!groups.empty()) groups.resize(static_cast<size_t>(a.max_prompts));
  }
  return {prompts, groups};
}

std::vector<std::unique_ptr<t2i::MetricScorer>> load_scorers(const Args& a, const std::vector<std::string>& prompts, const t2i::PipelineFolder& pipe,
                                                             const dm::PretrainedOptions& o, const std::function<void(const std::string&)>& log) {
  const auto& f = a.rewards;
  std::vector<std::unique_ptr<t2i::MetricScorer>> out;
  if (!f.image_reward.empty()) {
    auto ir = reward_files::load_image_reward(f, o, "di_evaluate");
    out.push_back(std::make_unique<t2i::ImageRewardScorer>(ir.model, ir.tokenizer, prompts));
    log("ImageReward from '" + f.image_reward + "'");
  }
  if (!f.aesthetic.empty()) {
    auto ae = reward_files::load_aesthetic(f, o, "di_evaluate");
    out.push_back(std::make_unique<t2i::AestheticScorer>(ae.vision, ae.head));
    log("aesthetic head '" + f.aesthetic + "' on CLIP '" + f.aesthetic_clip + "'");
  }
  auto clip_like = [&](const reward_files::ClipParts& parts, t2i::ClipSimilarityScorer::Kind kind, const std::string& from) {
    out.push_back(std::make_unique<t2i::ClipSimilarityScorer>(parts.clip, parts.tokenizer, prompts, kind));
    log(kind.info.title + " from '" + from + "'");
  };
  if (!f.pickscore.empty()) clip_like(reward_files::load_clip(f.pickscore, f.pickscore_tokenizer, o), t2i::ClipSimilarityScorer::pickscore(), f.pickscore);
  if (!f.clip.empty()) clip_like(reward_files::load_clip(f.clip, f.clip_tokenizer, o), t2i::ClipSimilarityScorer::clip_score(), f.clip);
  // HPS tokenizes with CLIP's vocabulary (any SD tokenizer folder: the teacher's by default).
  if (!f.hps.empty()) clip_like(reward_files::load_hps(f, o, pipe.path("tokenizer")), t2i::ClipSimilarityScorer::hps(), f.hps + " (" + f.hps_config + ")");
  TORCH_CHECK(!out.empty(), "di_evaluate: no metric given (--image-reward, --aesthetic, --pickscore, --clip or --hps)");
  return out;
}

uint64_t fnv1a(const std::vector<std::string>& strings) {
  uint64_t h = 1469598103934665603ull;
  for (const auto& s : strings) {
    for (unsigned char c : s) h = (h ^ c) * 1099511628211ull;
    h = (h ^ 0xFF) * 1099511628211ull;  // a separator no UTF-8 text contains
  }
  return h;
}

void run(const Args& a) {
  const torch::Device device(a.device);
  TORCH_CHECK(!device.is_cuda() || torch::cuda::is_available(), "di_evaluate: --device ", a.device, ": no CUDA device is available");
  const int threads = di::use_threads(a.threads);
  const auto precision = di::parse_precision(a.precision);
  di::check_precision_supported(precision, device, "di_evaluate");
  auto log = [](const std::string& s) { std::printf("%s\n", s.c_str()), std::fflush(stdout); };

  const auto [prompts, groups] = read_prompt_set(a);
  const auto pipe = t2i::PipelineFolder::open(a.teacher);
  const di::DiscreteVPSchedule schedule(pipe.scheduler().options);
  const auto frozen = dm::PretrainedOptions().device(device).dtype(di::compute_dtype(precision));
  auto teacher_unet = pipe.unet(frozen);
  teacher_unet->eval();
  auto vae = pipe.vae(frozen, dm::VaeParts::kDecoderOnly);
  const int64_t factor = int64_t{1} << (vae->config().block_out_channels.size() - 1);
  TORCH_CHECK(a.resolution % factor == 0, "di_evaluate: --resolution must be a multiple of the VAE's factor ", factor, ", got ", a.resolution);
  const int64_t side = a.resolution > 0 ? a.resolution / factor : teacher_unet->config().sample_size;
  const int64_t height = side * factor, width = side * factor;
  TORCH_CHECK(teacher_unet->config().in_channels == vae->config().latent_channels, "di_evaluate: the teacher's UNet takes ",
              teacher_unet->config().in_channels, " channels, its VAE makes ", vae->config().latent_channels);
  t2i::PromptEncoder encoder(pipe.text_encoders(frozen), pipe.prompt_options(height, width).device(device).dtype(torch::kFloat));

  LoadContext ctx;
  ctx.pipe = &pipe;
  ctx.schedule = &schedule;
  ctx.frozen = frozen;
  ctx.precision = precision;
  ctx.device = device;
  ctx.latent_shape = {vae->config().latent_channels, side, side};
  ctx.cross_attention_dim = teacher_unet->config().cross_attention_dim;
  ctx.null_condition = encoder.encode({""});
  std::vector<ComparedModel> models;
  for (int64_t steps : a.teacher_steps)
    if (steps > 0) models.push_back(teacher_model(teacher_unet, ctx, steps, a.guidance));
  for (const auto& spec : a.generators) models.push_back(generator_model(parse_generator_spec(spec), teacher_unet, ctx));
  TORCH_CHECK(!models.empty(), "di_evaluate: nothing to evaluate (--teacher-steps 0 and no --generator)");
  for (size_t i = 0; i < models.size(); ++i)
    for (size_t j = 0; j < i; ++j)
      TORCH_CHECK(models[i].slug != models[j].slug, "di_evaluate: two models would share the folder '", models[i].slug, "' ('", models[j].name,
                  "' and '", models[i].name, "'): name them (--generator NAME=PATH)");
  auto scorers = load_scorers(a, prompts, pipe, frozen, log);
  std::string diversity_metric;
  for (const char* name : {"pickscore", "clip_score", "hps", "aesthetic"})
    for (const auto& s : scorers)
      if (diversity_metric.empty() && s->info().name == name) diversity_metric = name;
  log(fmt::format("{} prompts × {} seeds at {}x{} on {}{}, {}; {} models, {} metrics", prompts.size(), a.seeds, height, width, device.str(),
                  device.is_cpu() ? fmt::format(" ({} threads)", threads) : std::string(), di::precision_name(precision), models.size(), scorers.size()));

  // The same noise for seed s, whatever the prompt and the model.
  std::vector<torch::Tensor> noise;
  for (int64_t s = 0; s < a.seeds; ++s) {
    auto gen = at::detail::createCPUGenerator(a.seed + static_cast<uint64_t>(s));
    noise.push_back(torch::randn(ctx.latent_shape, gen, torch::TensorOptions().dtype(torch::kFloat)));
  }
  const int64_t rows = static_cast<int64_t>(prompts.size()) * a.seeds;
  const int64_t batches = (rows + a.batch - 1) / a.batch;
  const std::string run_settings = fmt::format("prompts {:016x} x{} seeds {} from {} batch {} size {}x{} precision {}", fnv1a(prompts), prompts.size(),
                                               a.seeds, a.seed, a.batch, height, width, di::precision_name(precision));
  ReportInput report;
  report.prompts = prompts;
  report.groups = groups;
  report.seeds = a.seeds;
  for (const auto& s : scorers) report.metrics.push_back(s->info());
  report.diversity_metric = diversity_metric;
  report.resamples = a.resamples;
  report.command = a.command;
  report.device = device.is_cpu() ? fmt::format("CPU, {} threads", threads) : device.str();
  for (const auto& model : models) {
    const fs::path dir = fs::path(a.out) / "models" / model.slug;
    fs::create_directories(dir / "images");
    const std::string settings = model.settings + " | " + run_settings;
    ModelResults res{model.name, model.slug, model.steps, model.guidance, model.teacher, {}, NAN, NAN};
    for (const auto& s : scorers) res.per_image[s->info().name].assign(static_cast<size_t>(rows), NAN);
    std::vector<torch::Tensor> embeds(static_cast<size_t>(rows));
    double seconds = 0, all_seconds = 0;
    int64_t timed_images = 0, generated = 0;
    di::ProgressBar bar(model.slug, batches, stdout);
    for (int64_t b = 0; b < batches; ++b) {
      const int64_t r0 = b * a.batch, r1 = std::min(rows, r0 + a.batch);
      auto record = read_batch(dir, b, settings);
      torch::Tensor images;
      if (!record) {
        BatchRecord r;
        std::vector<std::string> row_prompts;
        std::vector<int64_t> index, seed;
        std::vector<torch::Tensor> z;
        for (int64_t row = r0; row < r1; ++row) {
          index.push_back(row / a.seeds), seed.push_back(row % a.seeds);
          row_prompts.push_back(prompts[static_cast<size_t>(index.back())]);
          z.push_back(noise[static_cast<size_t>(seed.back())]);
        }
        r.prompt_index = torch::tensor(index, torch::kLong);
        r.seed = torch::tensor(seed, torch::kLong);
        const auto condition = encoder.encode(row_prompts, index);
        const auto t0 = std::chrono::steady_clock::now();
        {
          torch::NoGradGuard no_grad;
          const auto x0 = model.sample(torch::stack(z).to(device), condition);
          di::AutocastScope autocast(precision, device);
          const auto pixels = vae->decode_latents(x0.to(t2i::module_dtype(*vae))).to(torch::kFloat);
          // As a pipeline saves images: [0, 1], ×255, rounded to 8 bits (the copy to the CPU waits for the device).
          images = ((pixels / 2 + 0.5).clamp(0, 1) * 255).round().to(torch::kCPU, torch::kByte);
        }
        r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        write_pngs(dir / "images", images, r.prompt_index, r.seed);
        record = std::move(r);
        ++generated;
      }
      bool rescored = false;
      for (const auto& s : scorers) {
        const auto& name = s->info().name;
        const bool wants_embeds = name == diversity_metric && !record->embeds.defined();
        if (record->scores.count(name) && !wants_embeds) continue;
        if (!images.defined()) images = read_pngs(dir / "images", record->prompt_index, record->seed, height, width);
        auto scored = s->score(images, record->prompt_index);
        record->scores[name] = scored.score;
        if (name == diversity_metric) record->embeds = scored.image_embeds;
        rescored = true;
      }
      if (rescored) write_batch(dir, b, *record, settings);
      for (int64_t row = r0; row < r1; ++row) {
        for (const auto& s : scorers) res.per_image[s->info().name][static_cast<size_t>(row)] = record->scores.at(s->info().name)[row - r0].item<double>();
        if (record->embeds.defined()) embeds[static_cast<size_t>(row)] = record->embeds[row - r0];
      }
      all_seconds += record->seconds;
      if (b > 0 || batches == 1) seconds += record->seconds, timed_images += r1 - r0;
      bar.update(b + 1, fmt::format("{:.3f} s/image{}", record->seconds / static_cast<double>(r1 - r0), generated ? "" : " (resumed)"));
    }
    bar.finish();
    res.seconds_per_image = seconds / static_cast<double>(timed_images);
    if (!diversity_metric.empty()) res.diversity = t2i::clip_diversity(torch::stack(embeds), static_cast<int64_t>(prompts.size()), a.seeds);
    log(fmt::format("{}: {} of {} batches generated now, {:.4f} s/image ({:.1f} s in all)", model.name, generated, batches, res.seconds_per_image,
                    all_seconds));
    report.models.push_back(std::move(res));
  }
  for (size_t i = 0; i < report.models.size(); ++i)
    if (report.models[i].teacher) {
      report.reference = i;
      break;
    }
  const auto now = std::time(nullptr);
  char date[32];
  std::strftime(date, sizeof date, "%Y-%m-%d", std::gmtime(&now));
  report.date = date;
  write_report(a.out, report);
  write_grids(a.out, report, height, width, a.grid_rows);
  log("wrote " + (fs::path(a.out) / "report.md").string());
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Scores one-step generators and their teacher with the paper's rewards on a prompt set (report.md, metrics, grids)"};
  app.option_defaults()->multi_option_policy(CLI::MultiOptionPolicy::TakeLast);
  Args a;
  for (int i = 0; i < argc; ++i) a.command += (i ? " " : "") + std::string(argv[i]);
  app.add_option("--teacher", a.teacher, "diffusers pipeline folder (its UNet, VAE, text encoders and scheduler serve every model)")
      ->required()
      ->check(CLI::ExistingDirectory);
  app.add_option("--teacher-steps", a.teacher_steps, "DDIM steps of the teacher (repeat for several; 0: do not evaluate the teacher)")
      ->multi_option_policy(CLI::MultiOptionPolicy::TakeAll)
      ->capture_default_str()
      ->check(CLI::Range(int64_t{0}, int64_t{1000}));
  app.add_option("--guidance", a.guidance, "the teacher's classifier-free guidance scale (1: none)")->capture_default_str()->check(CLI::Range(0.0, 100.0));
  app.add_option("--generator", a.generators, "a one-step generator: [NAME=]PATH[,t=T][,prediction=P][,lora=FILE] (repeatable)")
      ->multi_option_policy(CLI::MultiOptionPolicy::TakeAll);
  app.add_option("--prompts", a.prompts, "prompt file: a .tsv table with a Prompt column (data/parti/PartiPrompts.tsv), or one prompt a line")
      ->required()
      ->check(CLI::ExistingFile);
  app.add_option("--category", a.category, "only the rows of a .tsv table with this Category");
  app.add_option("--group-column", a.group_column, "the .tsv column the per-category report groups by (\"\": none)")->capture_default_str();
  app.add_option("--max-prompts", a.max_prompts, "the first N prompts (0: all)")->capture_default_str()->check(CLI::Range(int64_t{0}, int64_t{1} << 30));
  app.add_option("--seeds", a.seeds, "images per prompt (seeds seed, seed+1, ...)")->capture_default_str()->check(CLI::Range(int64_t{1}, int64_t{1000}));
  app.add_option("--seed", a.seed, "the first seed")->capture_default_str();
  app.add_option("--batch", a.batch, "images generated and scored at once")->capture_default_str()->check(CLI::Range(int64_t{1}, int64_t{4096}));
  app.add_option("--resolution", a.resolution, "image side in pixels (default: the UNet's sample_size x the VAE's factor)")
      ->check(CLI::Range(int64_t{8}, int64_t{4096}));
  reward_files::add_options(app, a.rewards);
  app.add_option("--out", a.out, "output folder (a rerun resumes there)")->capture_default_str();
  app.add_option("--device", a.device, "cpu | cuda | cuda:N")->capture_default_str();
  app.add_option("--precision", a.precision, "fp32 | bf16 | fp16 (CUDA): the models' dtype, under autocast")
      ->capture_default_str()
      ->check(CLI::IsMember({"fp32", "bf16", "fp16"}));
  app.add_option("--threads", a.threads, "CPU threads (0: OMP_NUM_THREADS if set, else every core)")->capture_default_str()->check(CLI::Range(0, 4096));
  app.add_option("--resamples", a.resamples, "bootstrap resamples of the differences")->capture_default_str()->check(CLI::Range(int64_t{1}, int64_t{1000000}));
  app.add_option("--grid-rows", a.grid_rows, "prompts per category grid")->capture_default_str()->check(CLI::Range(int64_t{1}, int64_t{64}));
  CLI11_PARSE(app, argc, argv);
  try {
    run(a);
  } catch (const std::exception& e) {
    return di::report_error("di_evaluate", e);
  }
  return 0;
}
