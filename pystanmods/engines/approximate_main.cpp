// A command-line front end to Stan's Pathfinder service, linked with one
// compiled Stan program, for the embedded engine: httpstan 4.13 exposes only
// NUTS and fixed_param, but ships Stan 2.35's headers, whose
// stan::services::pathfinder::pathfinder_lbfgs_multi is what CmdStan's
// `pathfinder` method runs. pystanmods builds this file with the program's
// C++ (which defines new_model) into one executable per program and runs it
// as a child process, so that Ctrl-C stops it as it stops CmdStan.
//
//   approximate data=FILE output=FILE [init=FILE[,FILE...]] [seed=N]
//               [paths=N] [draws=N] [iterations=N] [elbo_draws=N] [history=N]
//
// data and init are Stan JSON; with several init files, path p starts from
// file p modulo their number. The output is CSV (lines starting "#" are
// Stan's messages): lp_approx__, lp__ and every constrained parameter,
// transformed parameter and generated quantity, draws rows per path, not
// resampled: pystanmods computes the Pareto k of the importance ratios
// (lp__ - lp_approx__) and resamples only where k says the weights can be
// trusted, where Stan would resample whatever k is.

#include <stan/callbacks/interrupt.hpp>
#include <stan/callbacks/stream_logger.hpp>
#include <stan/callbacks/structured_writer.hpp>
#include <stan/callbacks/unique_stream_writer.hpp>
#include <stan/callbacks/writer.hpp>
#include <stan/io/empty_var_context.hpp>
#include <stan/io/json/json_data.hpp>
#include <stan/model/model_base.hpp>
#include <stan/services/error_codes.hpp>
#include <stan/services/pathfinder/multi.hpp>

#include <fstream>
#include <iostream>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

stan::model::model_base& new_model(stan::io::var_context& data_context, unsigned int seed,
                                   std::ostream* msg_stream);

namespace {

std::map<std::string, std::string> parse(int argc, char** argv) {
  std::map<std::string, std::string> args;
  for (int i = 1; i < argc; ++i) {
    std::string arg(argv[i]);
    auto eq = arg.find('=');
    if (eq == std::string::npos) {
      throw std::invalid_argument("arguments are key=value, got '" + arg + "'");
    }
    args[arg.substr(0, eq)] = arg.substr(eq + 1);
  }
  for (const char* needed : {"data", "output"}) {
    if (!args.count(needed)) {
      throw std::invalid_argument(std::string("missing argument ") + needed + "=FILE");
    }
  }
  return args;
}

int integer(const std::map<std::string, std::string>& args, const std::string& key, int fallback) {
  auto found = args.find(key);
  return found == args.end() ? fallback : std::stoi(found->second);
}

std::shared_ptr<stan::io::var_context> json_context(const std::string& path) {
  std::ifstream in(path);
  if (!in) {
    throw std::invalid_argument("cannot read " + path);
  }
  return std::make_shared<stan::json::json_data>(in);
}

}  // namespace

int main(int argc, char** argv) {
  try {
    auto args = parse(argc, argv);
    const unsigned int seed = static_cast<unsigned int>(integer(args, "seed", 1));
    const int paths = integer(args, "paths", 4);
    const int draws = integer(args, "draws", 1000);
    // CmdStan's defaults for its pathfinder method (CmdStan 2.35).
    const int iterations = integer(args, "iterations", 1000);
    const int elbo_draws = integer(args, "elbo_draws", 25);
    const int history = integer(args, "history", 5);
    const double init_radius = 2, init_alpha = 0.001, tol_obj = 1e-12, tol_rel_obj = 1e4, tol_grad = 1e-8,
                 tol_rel_grad = 1e7, tol_param = 1e-8;

    auto data = json_context(args["data"]);
    std::ostringstream model_messages;
    stan::model::model_base& model = new_model(*data, seed, &model_messages);
    std::cerr << model_messages.str();

    std::vector<std::string> init_files;
    if (args.count("init")) {
      std::stringstream names(args["init"]);
      for (std::string name; std::getline(names, name, ',');) {
        init_files.push_back(name);
      }
    }
    std::vector<std::shared_ptr<stan::io::var_context>> inits;
    for (int p = 0; p < paths; ++p) {
      inits.push_back(init_files.empty() ? std::make_shared<stan::io::empty_var_context>()
                                         : json_context(init_files[p % init_files.size()]));
    }
    stan::callbacks::interrupt interrupt;
    stan::callbacks::stream_logger logger(std::cerr, std::cerr, std::cerr, std::cerr, std::cerr);
    // Per-path output is not kept: the resampled draws are the result.
    std::vector<stan::callbacks::writer> init_writers(paths);
    std::vector<stan::callbacks::writer> path_parameters(paths);
    std::vector<stan::callbacks::structured_writer> path_diagnostics(paths);
    stan::callbacks::structured_writer diagnostics;
    auto file = std::make_unique<std::ofstream>(args["output"]);
    if (!*file) {
      throw std::invalid_argument("cannot write " + args["output"]);
    }
    file->precision(17);
    stan::callbacks::unique_stream_writer<std::ofstream> output(std::move(file), "# ");
    int code = stan::services::pathfinder::pathfinder_lbfgs_multi(
        model, inits, seed, 1, init_radius, history, init_alpha, tol_obj, tol_rel_obj, tol_grad, tol_rel_grad,
        tol_param, iterations, elbo_draws, draws, draws, paths, false, 0, interrupt, logger, init_writers,
        path_parameters, path_diagnostics, output, diagnostics, true, false);
    return code;
  } catch (const std::exception& error) {
    std::cerr << "approximate: " << error.what() << std::endl;
    return 70;
  }
}
